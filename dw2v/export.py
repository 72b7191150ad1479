"""``dw2v export``: a model's vectors as word2vec text or binary, Parquet, or NumPy.

Each file is written to a temporary name and renamed, so a failed export leaves nothing behind.
The Parquet schema (``token`` string, ``id`` int32, ``count`` int64, ``vector``
fixed_size_list<float32>[dim]) with key-value metadata is read as it is by pyarrow, DuckDB
and LanceDB.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dw2v import word2vec_format
from dw2v.atomic import atomic_file
from dw2v.embeddings import Embeddings
from dw2v.errors import ConfigError

FORMATS = ("word2vec-text", "word2vec-binary", "parquet", "npy")
#: NumPy exports put the tokens beside the matrix, one per line, in row order.
TOKENS_SUFFIX = ".tokens.txt"


def _is_vectors_file(path: Path, fmt: str) -> bool:
    """Whether ``path`` is a vectors file of format ``fmt`` (so --overwrite may replace it):
    a Parquet export with dw2v's metadata, a word2vec file (its ``COUNT DIM`` header), a 2-D
    float32 ``.npy`` matrix or its tokens file."""
    try:
        if fmt == "parquet":
            return b"dw2v.dim" in (pq.read_schema(path).metadata or {})
        if fmt == "npy":
            if path.name.endswith(TOKENS_SUFFIX):  # ours only beside the matrix it names
                matrix = path.with_name(path.name.removesuffix(TOKENS_SUFFIX) + ".npy")
                return matrix.exists() and _is_vectors_file(matrix, "npy")
            from dw2v.embeddings import check_matrix_header
            check_matrix_header(path)
            return True
        with open(path, "rb") as handle:
            header = handle.readline(200).split()
        return len(header) == 2 and all(part.isdigit() for part in header)
    except Exception:  # noqa: BLE001 - anything unreadable is not ours to replace
        return False


def _atomic(path: Path, overwrite: bool, fmt: str) -> Any:
    """``atomic_file``: an existing ``path`` is replaced only with ``overwrite`` and only if
    it is a vectors file of ``fmt``."""
    return atomic_file(path, overwrite=overwrite, ours=lambda p: _is_vectors_file(p, fmt),
                       what=f"a vectors file of the format written ({fmt})")


def parquet_table(words: list[str], vectors: np.ndarray, counts: np.ndarray,
                  metadata: dict[str, str]) -> pa.Table:
    """The vector-store table: token, id, count, vector (fixed-size list), with metadata."""
    count, dim = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors, np.float32).reshape(-1), pa.float32())
    table = pa.table({
        "token": pa.array(words, pa.string()),
        "id": pa.array(np.arange(count, dtype=np.int32)),
        "count": pa.array(np.asarray(counts, np.int64)),
        "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
    })
    return table.replace_schema_metadata({k.encode(): v.encode() for k, v in metadata.items()})


def _metadata(emb: Embeddings, normalized: bool) -> dict[str, str]:
    settings = emb.meta.get("settings", {})
    return {"dw2v.dim": str(emb.vectors.shape[1]), "dw2v.normalized": json.dumps(normalized),
            "dw2v.version": str(emb.meta.get("dw2v_version", "")),
            "dw2v.settings": json.dumps(settings)}


def export(emb: Embeddings, path: str | Path, fmt: str, *, normalize: bool = False,
           limit: int | None = None, overwrite: bool = False) -> list[Path]:
    """Write ``emb`` (its ``limit`` most frequent words; unit vectors with ``normalize``) to
    ``path`` in format ``fmt``; return the files written."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit: must be at least 1, not {limit}")
    path = Path(path)
    n = len(emb) if limit is None else min(limit, len(emb))
    words = emb.words[:n]
    if fmt.startswith("word2vec"):
        _check_word2vec_words(words, fmt)
    vectors = (emb.unit if normalize else emb.vectors)[:n].astype(np.float32, copy=False)
    counts = np.asarray(emb.counts)[:n]
    writers: dict[str, Callable[[Path], None]] = {
        "word2vec-text": lambda tmp: _write_with(word2vec_format.write_text, tmp, words, vectors),
        "word2vec-binary": lambda tmp: _write_with(word2vec_format.write_binary, tmp, words,
                                                   vectors),
        "parquet": lambda tmp: pq.write_table(
            parquet_table(words, vectors, counts, _metadata(emb, normalize)), tmp),
        "npy": lambda tmp: _write_with(lambda h, _, v: np.save(h, v), tmp, words, vectors),
    }
    written = [path]
    if fmt == "npy":
        tokens = path.with_name(path.name.removesuffix(".npy") + TOKENS_SUFFIX)
        with _atomic(tokens, overwrite, fmt) as tmp_tokens, _atomic(path, overwrite, fmt) as tmp:
            tmp_tokens.write_text("".join(w + "\n" for w in words), encoding="utf-8")
            writers[fmt](tmp)
        written.append(tokens)
    else:
        with _atomic(path, overwrite, fmt) as tmp:
            writers[fmt](tmp)
    return written


def _check_word2vec_words(words: list[str], fmt: str) -> None:
    """A word2vec file separates a word from its numbers by a space: a word holding whitespace
    (a custom --token-pattern can make one) or nothing would not read back."""
    import pyarrow.compute as pc

    bad = pc.or_(pc.match_substring_regex(pa.array(words, pa.string()), r"\s"),
                 pc.equal(pc.binary_length(pa.array(words, pa.string())), 0))
    if pc.any(bad).as_py():
        first = words[int(pc.index(bad, True).as_py())]
        count = int(pc.sum(bad).as_py())
        raise ConfigError(f"--format {fmt}: {count:,} of the words hold whitespace or are "
                          f"empty (the first: {first!r}), which a word2vec file cannot hold; "
                          "export to parquet or npy instead")


def _write_with(writer: Callable[..., None], tmp: Path, words: list[str],
                vectors: np.ndarray) -> None:
    with open(tmp, "wb") as handle:
        writer(handle, words, vectors)
