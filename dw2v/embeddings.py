"""Trained vectors apart from training state: words, counts, vectors, and lookups.

``dw2v.load(MODEL_DIR)`` returns an :class:`Embeddings`. Files are ``vectors.npy`` (float32,
one row per word, ids as in ``vocab.parquet``) and ``model.json``; never pickles.

Loading checks the files against each other before trusting them: a missing, truncated or
non-float32 ``vectors.npy``, a ``model.json`` that is not valid JSON or whose ``vector_size``
disagrees with the vectors, a vocabulary of another length, and NaN or inf in any vectors are
each an :class:`~dw2v.errors.InputError` naming the file and the problem, never a traceback or
a silently wrong answer.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from dw2v.errors import InputError
from dw2v.vocab import VOCAB_FILE, load as load_vocab

if TYPE_CHECKING:
    from dw2v import evaluate
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
        return isinstance(word, str) and self._lookup(word) is not None

    def __getitem__(self, key: str | Sequence[str]) -> np.ndarray:
        """A word's vector, or a matrix of several words' (gensim's ``kv[key]``)."""
        if isinstance(key, str):
            return self.vector(key)
        return np.vstack([self.vector(k) for k in key])

    @cached_property
    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    @property
    def key_to_index(self) -> dict[str, int]:
        """gensim's name for :attr:`index`: word -> row."""
        return self.index

    @property
    def index_to_key(self) -> list[str]:
        """gensim's name for :attr:`words`: row -> word."""
        return self.words

    @property
    def vector_size(self) -> int:
        return int(self.vectors.shape[1])

    @cached_property
    def word_array(self) -> Any:
        """The words as an Arrow string array (lookups of many tokens at once)."""
        import pyarrow as pa

        return pa.array(self.words, pa.string())

    def embed(self, texts: Any) -> np.ndarray:
        """Document vectors: the mean of each text's known word vectors (zeros where it has
        none), tokenized as training tokenized (``dw2v.docvec``); a Dask Series gives a
        Dask array (``docvec.embed_series``)."""
        from dw2v import docvec

        if hasattr(texts, "__dask_graph__"):  # a Dask collection
            return docvec.embed_series(self, texts)
        return docvec.embed(self, texts)

    @cached_property
    def unit(self) -> np.ndarray:
        """Row-normalised vectors (zero rows stay zero)."""
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        return self.vectors / np.where(norms == 0, 1, norms)

    @cached_property
    def lowercase(self) -> bool:
        """Whether training lowercased its text (a dw2v model's ``model.json`` says so):
        queries are then lowercased too, so ``Lord`` finds ``lord``."""
        settings = self.meta.get("settings", {}).get("ingest", {}).get("tokenizer", {})
        return bool(settings.get("lowercase", False))

    def _lookup(self, word: str) -> int | None:
        i = self.index.get(word)
        if i is None and self.lowercase:
            i = self.index.get(word.lower())
        return i

    def _row(self, word: str) -> int:
        i = self._lookup(word)
        if i is None:
            raise KeyError(f"{word!r} is not in the vocabulary ({len(self):,} words)")
        return i

    def get_index(self, word: str, default: int | None = None) -> int | None:
        """The word's row, or ``default`` when it is not in the vocabulary."""
        i = self._lookup(word)
        return default if i is None else i

    def vector(self, word: str) -> np.ndarray:
        return self.vectors[self._row(word)]

    def get_vector(self, word: str, norm: bool = False) -> np.ndarray:
        """The word's vector (unit length with ``norm``), as gensim's ``get_vector``."""
        i = self._row(word)
        return self.unit[i] if norm else self.vectors[i]

    def similarity(self, w1: str, w2: str) -> float:
        """Cosine similarity of two words."""
        return float(self.unit[self._row(w1)] @ self.unit[self._row(w2)])

    def n_similarity(self, ws1: Sequence[str], ws2: Sequence[str]) -> float:
        """Cosine similarity of the means of two word sets' vectors (gensim's rule: the raw
        vectors averaged, then normalised)."""
        if not (len(ws1) and len(ws2)):
            raise ZeroDivisionError("At least one of the passed lists is empty.")
        a, b = self[list(ws1)].mean(axis=0), self[list(ws2)].mean(axis=0)
        return float(a @ b / ((np.linalg.norm(a) * np.linalg.norm(b)) or 1.0))

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word furthest from the mean of the others' unit vectors (words outside the
        vocabulary are left out, as gensim does)."""
        used = [w for w in words if w in self]
        if not used:
            raise ValueError("cannot select a word from an empty list")
        vectors = self.unit[[self._row(w) for w in used]]
        mean = vectors.mean(axis=0)
        mean /= np.linalg.norm(mean) or 1.0
        return used[int(np.argmin(vectors @ mean))]

    def _top(self, query: np.ndarray, k: int, exclude: Sequence[int],
             index: AnnIndex | None, restrict_vocab: int | None = None
             ) -> list[tuple[str, float]]:
        if k < 1:
            raise ValueError(f"topn must be at least 1, not {k}")
        query = query / (np.linalg.norm(query) or 1.0)
        if index is not None:
            if restrict_vocab is not None:
                raise ValueError("restrict_vocab applies to exact queries, not to an index")
            ids, sims = index.query(query[None, :].astype(np.float32), k + len(exclude))
            pairs = [(int(i), float(s)) for i, s in zip(ids[0], sims[0]) if i >= 0]
        else:
            sims = self.unit[:restrict_vocab] @ query.astype(np.float32)
            sims[[i for i in exclude if i < len(sims)]] = -np.inf
            kk = min(k + len(exclude), len(sims))
            top = np.argpartition(-sims, kk - 1)[:kk]
            pairs = [(int(j), float(sims[j])) for j in top[np.argsort(-sims[top])]]
        skip = set(exclude)
        return [(self.words[j], s) for j, s in pairs if j not in skip][:k]

    def most_similar(self, positive: Any = None, negative: Any = None,
                     topn: int | None = 10, *, restrict_vocab: int | None = None,
                     index: AnnIndex | None = None) -> Any:
        """gensim's ``most_similar``: the ``topn`` words nearest by cosine to the mean of the
        unit vectors of the ``positive`` words (or vectors, or ``(word, weight)`` pairs) minus
        the ``negative`` ones, the query words left out; among the ``restrict_vocab`` most
        frequent words; exact, or through an approximate nearest-neighbour ``index``.
        ``topn=None``: the similarity to every word, as an array."""
        if isinstance(negative, (int, np.integer)) and not isinstance(negative, bool):
            raise TypeError(f"most_similar(word, {negative}): the second argument is "
                            f"negative (gensim's order); the number of results is "
                            f"topn={negative}")
        items = ([(item, 1.0) for item in _as_list(positive)]
                 + [(item, -1.0) for item in _as_list(negative)])
        if not items:
            raise ValueError("most_similar needs a word or a vector (positive=...)")
        mean = np.zeros(self.vector_size, np.float64)
        total, exclude = 0.0, []
        for item, weight in items:
            if isinstance(item, tuple):
                item, weight = item
            if isinstance(item, str):
                i = self._row(item)
                exclude.append(i)
                vec = self.unit[i]
            else:
                vec = np.asarray(item, np.float32)
                if vec.shape != (self.vector_size,):
                    raise ValueError(f"a query vector must have shape ({self.vector_size},), "
                                     f"not {vec.shape}")
            mean += weight * vec
            total += abs(weight)
        mean = (mean / total).astype(np.float32)
        if topn is None:
            return self.unit[:restrict_vocab] @ (mean / (np.linalg.norm(mean) or 1.0))
        return self._top(mean, topn, exclude, index, restrict_vocab)

    def similar_by_word(self, word: str, topn: int = 10) -> list[tuple[str, float]]:
        return self.most_similar(word, topn=topn)

    def similar_by_vector(self, vector: np.ndarray, topn: int = 10) -> list[tuple[str, float]]:
        return self.most_similar(vector, topn=topn)

    def analogy(self, a: str, b: str, c: str, topn: int = 10,
                index: AnnIndex | None = None) -> list[tuple[str, float]]:
        """``a`` is to ``b`` as ``c`` is to ?: 3CosAdd (unit b + unit c - unit a), the three
        words excluded (gensim's ``most_similar(positive=[b, c], negative=[a])``)."""
        ia, ib, ic = self._row(a), self._row(b), self._row(c)
        query = (self.unit[ib] + self.unit[ic] - self.unit[ia]) / 3
        return self._top(query, topn, [ia, ib, ic], index)

    def evaluate_similarity(self, path: str | Path,
                            restrict_vocab: int | None = 300_000) -> evaluate.SimilarityResult:
        """Spearman and Pearson correlation with a word-pair file's scores (gensim's rules)."""
        from dw2v import evaluate

        return evaluate.similarity(self.words, self.vectors, path,
                                   restrict_vocab=restrict_vocab, unit=self.unit)

    def evaluate_analogies(self, path: str | Path,
                           restrict_vocab: int | None = 300_000) -> evaluate.AnalogyResult:
        """Analogy accuracy on a Google-format file, overall and per section."""
        from dw2v import evaluate

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


def _as_list(value: Any) -> list[Any]:
    """gensim's ``_ensure_list``: one word or vector as a list of one, a matrix as its rows."""
    if value is None:
        return []
    if isinstance(value, (str, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1):
        return [value]
    if isinstance(value, np.ndarray) and value.ndim == 2:
        return list(value)
    return list(value)


def npy_header(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a ``.npy`` file from its header, checked against the file's size
    before any data is read; :class:`InputError` naming the file when it is missing, not a
    ``.npy`` file, truncated or longer than its header says, or holds Python objects."""
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "missing" if not path.exists() else "not a file")
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            offset = handle.tell()
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise InputError(str(path), f"cannot be read ({exc.strerror or exc})") from None
    except (ValueError, EOFError) as exc:
        raise InputError(str(path), f"not a NumPy .npy file ({exc})") from None
    if dtype.hasobject:
        raise InputError(str(path), "holds Python objects, not numbers (dw2v never writes "
                                    "pickles and does not read them)")
    expected = offset + math.prod(shape) * dtype.itemsize
    described = f"a {'x'.join(map(str, shape)) or 'scalar'} {dtype} array"
    if size < expected:
        raise InputError(str(path), f"truncated (expected {expected:,} bytes for {described}, "
                                    f"found {size:,})")
    if size > expected:
        raise InputError(str(path), f"{size - expected:,} bytes longer than its header says "
                                    f"({described}, {expected:,} bytes): not a complete .npy "
                                    "file")
    return tuple(int(n) for n in shape), dtype


def check_matrix_header(path: str | Path) -> tuple[int, int]:
    """Rows and columns of a ``.npy`` file that must hold a 2-D float32 matrix (header only)."""
    shape, dtype = npy_header(path)
    if len(shape) != 2:
        raise InputError(str(path), f"holds a {len(shape)}-D array of shape {shape}, not a "
                                    "2-D matrix (one row per word)")
    if dtype.kind != "f" or dtype.itemsize != 4:
        raise InputError(str(path), f"holds {dtype} values, not float32")
    return shape[0], shape[1]


def read_matrix(path: str | Path) -> np.ndarray:
    """A 2-D float32 matrix from a ``.npy`` file, checked (:func:`check_matrix_header`) before
    it is read; native byte order."""
    check_matrix_header(path)
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(str(path), f"cannot be read ({exc})") from None
    return matrix.astype(np.float32, copy=False)


#: Rows checked at once for NaN and inf (bounds the check's temporary memory).
_FINITE_BLOCK = 65_536


def check_finite(path: str | Path, vectors: np.ndarray, words: Sequence[str] | None = None
                 ) -> None:
    """Refuse vectors holding NaN or inf, with the number of such rows and the first one."""
    bad = 0
    first = -1
    for lo in range(0, len(vectors), _FINITE_BLOCK):
        ok = np.isfinite(vectors[lo:lo + _FINITE_BLOCK]).all(axis=1)
        if not ok.all():
            if first < 0:
                first = lo + int(np.argmin(ok))
            bad += int(len(ok) - ok.sum())
    if bad:
        which = f"row {first}" + (f", {words[first]!r}" if words is not None else "")
        rows = "1 row holds" if bad == 1 else f"{bad:,} rows hold"
        raise InputError(str(path), f"{rows} NaN or inf (the first: {which}); the vectors are "
                                    "corrupt, or training diverged")


def _read_model_json(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(str(path), f"cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not valid JSON (not UTF-8: {exc.reason})") from None
    except ValueError as exc:
        raise InputError(str(path), f"not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise InputError(str(path), f"not a JSON object (holds a {type(meta).__name__})")
    for key in ("vector_size", "vocab_size"):
        if key not in meta:
            if key == "vector_size":
                raise InputError(str(path), "has no vector_size: not a dw2v model description")
            continue
        value = meta[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(str(path), f"{key} is {value!r}, not a positive whole number")
    for key, kind in (("settings", dict), ("rounds", list)):
        if key in meta and not isinstance(meta[key], kind):
            raise InputError(str(path), f"{key} is a {type(meta[key]).__name__}, not a JSON "
                                        f"{'object' if kind is dict else 'array'}")
    if "rounds" in meta and not all(isinstance(r, dict) for r in meta["rounds"]):
        raise InputError(str(path), "rounds holds an entry that is not a JSON object")
    return meta


def _unfinished(path: Path) -> str:
    """A hint when training into ``path`` has not finished (its staging directory is there,
    or, from dw2v 0.1, checkpoints inside it)."""
    from dw2v.atomic import staging_dir

    stage = staging_dir(path.absolute())
    if stage.is_dir() or (path / "checkpoints").exists():
        where = f" in {stage}" if stage.is_dir() else ""
        return (f" (training has not finished{where}; continue it with dw2v train -o {path} "
                "--resume)")
    return ""


def _load_model_dir(path: Path) -> Embeddings:
    """A model directory, its files checked against each other before the vectors are read:
    ``model.json`` (valid, with the dimension), ``vocab.parquet`` and ``vectors.npy`` (a
    complete float32 matrix of one row per word, no NaN or inf)."""
    meta_path = path / MODEL_JSON
    if not meta_path.exists():
        raise InputError(str(path), f"not a dw2v model: no {MODEL_JSON}{_unfinished(path)}")
    meta = _read_model_json(meta_path)
    vectors_path, vocab_path = path / VECTORS, path / VOCAB_FILE
    if not vectors_path.exists():
        raise InputError(str(vectors_path), f"missing (a model directory holds {MODEL_JSON}, "
                                            f"{VOCAB_FILE} and {VECTORS})")
    if not vocab_path.exists():
        raise InputError(str(vocab_path), f"missing (a model directory holds {MODEL_JSON}, "
                                          f"{VOCAB_FILE} and {VECTORS})")
    rows, dim = check_matrix_header(vectors_path)
    if meta["vector_size"] != dim:
        raise InputError(str(meta_path), f"vector_size {meta['vector_size']} but {VECTORS} has "
                                         f"{dim} columns")
    if "vocab_size" in meta and meta["vocab_size"] != rows:
        raise InputError(str(meta_path), f"vocab_size {meta['vocab_size']} but {VECTORS} has "
                                         f"{rows} rows")
    vocab = load_vocab(vocab_path)
    if rows != len(vocab):
        raise InputError(str(vectors_path), f"{rows} rows but {VOCAB_FILE} has {len(vocab)} "
                                            "words")
    words = vocab.tokens.to_pylist()
    vectors = read_matrix(vectors_path)
    check_finite(vectors_path, vectors, words)
    return Embeddings(words, vectors, vocab.counts, meta)


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
        raise InputError(str(path), f"no such file or directory{_unfinished(path)}")
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
    if not path.is_dir():  # a model directory's vectors were checked as they were read
        check_finite(path, emb.vectors, emb.words)
    return emb
