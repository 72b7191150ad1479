"""Trained vectors apart from training state: words, counts, vectors, and lookups.

``dw2v.load(MODEL_DIR)`` returns an :class:`Embeddings`. Files are ``vectors.npy`` (float32,
one row per word, ids as in ``vocab.parquet``) and ``model.json``; never pickles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from dw2v import evaluate
from dw2v.errors import InputError
from dw2v.vocab import load as load_vocab

if TYPE_CHECKING:
    from dw2v.search import AnnIndex

VECTORS = "vectors.npy"
OUTPUT_VECTORS = "output_vectors.npy"
MODEL_JSON = "model.json"


@dataclass(frozen=True)
class Embeddings:
    """Words (id order: most frequent first), their counts and float32 vectors."""

    words: list[str]
    vectors: np.ndarray
    counts: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    @cached_property
    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    @cached_property
    def unit(self) -> np.ndarray:
        """Row-normalised vectors (zero rows stay zero)."""
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        return self.vectors / np.where(norms == 0, 1, norms)

    def _row(self, word: str) -> int:
        i = self.index.get(word)
        if i is None:
            raise KeyError(f"{word!r} is not in the vocabulary ({len(self):,} words)")
        return i

    def vector(self, word: str) -> np.ndarray:
        return self.vectors[self._row(word)]

    def _top(self, query: np.ndarray, k: int, exclude: Sequence[int],
             index: AnnIndex | None) -> list[tuple[str, float]]:
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        query = query / (np.linalg.norm(query) or 1.0)
        if index is not None:
            ids, sims = index.query(query[None, :].astype(np.float32), k + len(exclude))
            pairs = [(int(i), float(s)) for i, s in zip(ids[0], sims[0]) if i >= 0]
        else:
            sims = self.unit @ query.astype(np.float32)
            sims[list(exclude)] = -np.inf
            kk = min(k, len(sims))
            top = np.argpartition(-sims, kk - 1)[:kk]
            pairs = [(int(j), float(sims[j])) for j in top[np.argsort(-sims[top])]]
        skip = set(exclude)
        return [(self.words[j], s) for j, s in pairs if j not in skip][:k]

    def most_similar(self, query: str | np.ndarray, k: int = 10,
                     index: AnnIndex | None = None) -> list[tuple[str, float]]:
        """The ``k`` nearest words by cosine similarity to a word (itself excluded) or a
        vector; exact, or through an approximate nearest-neighbour ``index``."""
        if isinstance(query, str):
            i = self._row(query)
            return self._top(self.unit[i], k, [i], index)
        query = np.asarray(query, np.float32)
        if query.shape != (self.vectors.shape[1],):
            raise ValueError(f"a query vector must have shape ({self.vectors.shape[1]},), "
                             f"not {query.shape}")
        return self._top(query, k, [], index)

    def analogy(self, a: str, b: str, c: str, k: int = 10,
                index: AnnIndex | None = None) -> list[tuple[str, float]]:
        """``a`` is to ``b`` as ``c`` is to ?: 3CosAdd (unit b + unit c - unit a), the three
        words excluded (gensim's ``most_similar(positive=[b, c], negative=[a])``)."""
        ia, ib, ic = self._row(a), self._row(b), self._row(c)
        query = (self.unit[ib] + self.unit[ic] - self.unit[ia]) / 3
        return self._top(query, k, [ia, ib, ic], index)

    def evaluate_similarity(self, path: str | Path,
                            restrict_vocab: int | None = 300_000) -> evaluate.SimilarityResult:
        """Spearman and Pearson correlation with a word-pair file's scores (gensim's rules)."""
        return evaluate.similarity(self.words, self.vectors, path,
                                   restrict_vocab=restrict_vocab, unit=self.unit)

    def evaluate_analogies(self, path: str | Path,
                           restrict_vocab: int | None = 30_000) -> evaluate.AnalogyResult:
        """Analogy accuracy on a Google-format file, overall and per section."""
        return evaluate.analogies(self.words, self.vectors, path,
                                  restrict_vocab=restrict_vocab, unit=self.unit)

    def to_gensim(self) -> Any:
        """The vectors as gensim ``KeyedVectors`` (with counts); needs gensim installed."""
        try:
            from gensim.models import KeyedVectors
        except ImportError:
            raise ImportError("to_gensim() needs gensim: pip install gensim") from None
        kv = KeyedVectors(self.vectors.shape[1], count=0, dtype=np.float32)
        kv.add_vectors(self.words, self.vectors)
        for word, count in zip(self.words, np.asarray(self.counts).tolist()):
            kv.set_vecattr(word, "count", int(count))
        return kv


def _load_model_dir(path: Path) -> Embeddings:
    meta_path = path / MODEL_JSON
    if not meta_path.exists():
        hint = (" (training has not finished; continue it with --resume)"
                if (path / "checkpoints").exists() else "")
        raise InputError(str(path), f"not a dw2v model: no {MODEL_JSON}{hint}")
    meta = json.loads(meta_path.read_text())
    vocab = load_vocab(path)
    vectors = np.load(path / VECTORS)
    if vectors.shape[0] != len(vocab):
        raise InputError(str(path), f"{VECTORS} has {vectors.shape[0]} rows but the vocabulary "
                                    f"has {len(vocab)} words")
    return Embeddings(vocab.tokens.to_pylist(), vectors, vocab.counts, meta)


def _load_parquet(path: Path) -> Embeddings:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds
        raise InputError(str(path), f"not a readable Parquet file ({exc})") from None
    missing = {"token", "vector"} - set(table.column_names)
    if missing:
        raise InputError(str(path), f"not a vectors table: no column {', '.join(sorted(missing))}")
    vector = table.column("vector").combine_chunks()
    if not hasattr(vector.type, "list_size"):
        raise InputError(str(path), f"column 'vector' is {vector.type}, not a fixed-size list")
    vectors = vector.values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(
        len(table), vector.type.list_size)
    counts = (table.column("count").to_numpy().astype(np.int64) if "count" in table.column_names
              else np.zeros(len(table), np.int64))
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return Embeddings(table.column("token").to_pylist(), vectors, counts,
                      {"source": str(path), "format": "parquet", **meta})


def load(path: str | Path, *, binary: bool | None = None,
         limit: int | None = None) -> Embeddings:
    """Read vectors: a model directory written by ``dw2v train``, a Parquet export, or a
    word2vec text or binary file (the C tool's, gensim's, fastText's ``.vec``; detected)."""
    from dw2v import word2vec_format

    path = Path(path)
    if not path.exists():
        raise InputError(str(path), "no such file or directory")
    if path.is_dir():
        emb = _load_model_dir(path)
    elif path.suffix == ".parquet":
        emb = _load_parquet(path)
    else:
        words, vectors = word2vec_format.read(path, binary=binary, limit=limit)
        emb = Embeddings(words, vectors, np.zeros(len(words), np.int64),
                         {"source": str(path), "format": "word2vec"})
    if len(emb) == 0:
        raise InputError(str(path), "holds no words (an empty model)")
    if len(set(emb.words)) != len(emb.words):
        raise InputError(str(path), "lists a word more than once")
    if limit is not None and len(emb) > limit:
        emb = Embeddings(emb.words[:limit], emb.vectors[:limit], emb.counts[:limit], emb.meta)
    return emb
