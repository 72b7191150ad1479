"""Document vectors: the mean of a text's word vectors (Spark's ``Word2VecModel.transform``),
for downstream vector search over documents.

A text is tokenized as training tokenized its corpus (the model's tokenizer settings from
``model.json``: lowercasing, the pattern, the longest token), or given as a list of tokens;
words outside the vocabulary are left out, and a text with none gets the zero vector. From
Python over a list, an Arrow array or a Dask Series (partition by partition, where the
partitions live); from the command line over a Parquet or text corpus
(``dw2v embed MODEL INPUT... -o OUT.parquet``), streamed in bounded memory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dw2v.config import IngestConfig, TokenizerConfig

if TYPE_CHECKING:
    from dw2v.embeddings import Embeddings

logger = logging.getLogger(__name__)


def tokenizer_of(emb: Embeddings) -> TokenizerConfig:
    """The tokenizer training used (a dw2v model's settings), else the default one with the
    case kept (a word2vec file's words are as they were written)."""
    settings = emb.meta.get("settings", {}).get("ingest", {}).get("tokenizer")
    if settings:
        return TokenizerConfig(**settings)
    return TokenizerConfig(lowercase=False)


def embed(emb: Embeddings, texts: Any, tokenizer: TokenizerConfig | None = None) -> np.ndarray:
    """One float32 vector per text (``(len(texts), dim)``): the mean of its known words'
    vectors, zeros where it has none. ``texts``: strings (None: no words), lists of tokens,
    or an Arrow array of either."""
    from dw2v.tokenize import tokenize

    array = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else _as_arrow(texts)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    dim = emb.vectors.shape[1]
    if len(array) == 0:
        return np.zeros((0, dim), np.float32)
    batch = tokenize(array, tokenizer or tokenizer_of(emb))
    found = pc.index_in(batch.tokens, value_set=emb.word_array)
    known = found.is_valid().to_numpy(zero_copy_only=False)
    rows = batch.rows[known]
    ids = found.drop_null().to_numpy().astype(np.int64)
    sums = np.zeros((len(array), dim), np.float64)
    np.add.at(sums, rows, emb.vectors[ids])
    counts = np.bincount(rows, minlength=len(array))
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def _as_arrow(texts: Sequence[Any]) -> pa.Array:
    texts = list(texts)
    if any(isinstance(t, (list, tuple)) for t in texts):
        return pa.array([None if t is None else list(t) for t in texts], pa.list_(pa.string()))
    return pa.array(texts, pa.string())


def embed_series(emb: Embeddings, series: Any) -> Any:
    """A Dask Series of texts (or token lists) as a Dask array of document vectors, computed
    partition by partition where the partitions live (the model travels with the tasks)."""
    import dask
    import dask.array as da

    blocks = [da.from_delayed(dask.delayed(_embed_partition)(emb, part),
                              shape=(np.nan, emb.vector_size), dtype=np.float32)
              for part in series.to_delayed()]
    return da.concatenate(blocks, axis=0, allow_unknown_chunksizes=True)


def _embed_partition(emb: Embeddings, part: Any) -> np.ndarray:
    return embed(emb, part.tolist())


def embed_files(emb: Embeddings, inputs: Sequence[str], output: str | Path, *,
                ingest: IngestConfig = IngestConfig(), id_column: str | None = None,
                overwrite: bool = False) -> int:
    """Write ``output`` (Parquet): for every document of ``inputs`` (Parquet or text, as
    ``dw2v train`` reads them), its id and its vector (``fixed_size_list<float32>[dim]``).
    The id is the input's ``id_column`` (Parquet; default ``doc_id`` when present), else
    ``source`` (the file) and ``row`` (the document's row in it). Written to a temporary
    file, then renamed: ``output`` appears whole or not at all. Returns the documents."""
    from dw2v.atomic import atomic_file, check_not_overlapping
    from dw2v.ingest import check_shard, find_shards, iter_text

    dim = emb.vectors.shape[1]
    tokenizer = tokenizer_of(emb)
    vector_type = pa.list_(pa.float32(), dim)
    total = 0
    urls = find_shards(list(inputs), ingest)
    check_not_overlapping(Path(output).absolute(), urls)
    shards = [s for s in (check_shard(url, i, ingest) for i, url in enumerate(urls))
              if not s.empty]
    column = _id_column(shards, ingest, id_column)
    with atomic_file(Path(output), overwrite=overwrite, ours=is_document_vectors,
                     what="a document-vectors file dw2v wrote") as tmp:
        writer: pq.ParquetWriter | None = None
        try:
            for shard in shards:
                ids = _ids(shard, ingest, column)
                row = 0
                for text in iter_text(shard, ingest):
                    vectors = embed(emb, text, tokenizer)
                    flat = pa.array(vectors.reshape(-1), pa.float32())
                    columns = ids(row, len(text))
                    columns["vector"] = pa.FixedSizeListArray.from_arrays(flat, dim)
                    table = pa.table(columns)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema.with_metadata({
                            "dw2v.vector_size": str(dim), "dw2v.embedding": "mean of word "
                                                                            "vectors"}))
                    elif not table.schema.equals(writer.schema):  # e.g. int32 ids, int64
                        table = table.cast(writer.schema)
                    writer.write_table(table)
                    row += len(text)
                    total += len(text)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:  # nothing to embed: an empty file of the same shape
            pq.write_table(pa.table({"source": pa.array([], pa.string()),
                                     "row": pa.array([], pa.int64()),
                                     "vector": pa.array([], vector_type)}), tmp)
    logger.info("embedded %d documents into %s", total, output)
    return total


def is_document_vectors(path: Path) -> bool:
    """Whether ``path`` is a Parquet file of document vectors that dw2v wrote."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception:  # noqa: BLE001 - anything unreadable is not ours to replace
        return False
    return b"dw2v.embedding" in metadata


def _columns(shard: Any, ingest: IngestConfig) -> list[str]:
    import fsspec

    if shard.kind != "parquet":
        return []
    with fsspec.open(shard.url, "rb", **ingest.storage_options) as handle:
        return pq.ParquetFile(handle).schema_arrow.names


def _id_column(shards: Sequence[Any], ingest: IngestConfig, requested: str | None) -> str | None:
    """The id column every shard gives (one scheme for the whole output): ``requested``,
    which every input must hold (InputError naming the first that does not); else
    ``doc_id`` where every input is Parquet and holds it; else None (source and row)."""
    from dw2v.errors import InputError

    for shard in shards:
        names = _columns(shard, ingest)
        if requested is not None and requested not in names:
            where = f"columns: {', '.join(names)}" if names else "a text file has no columns"
            raise InputError(shard.url, f"no id column {requested!r} ({where})")
        if requested is None and "doc_id" not in names:
            return None
    return requested or "doc_id"


def _ids(shard: Any, ingest: IngestConfig, column: str | None) -> Any:
    """A function (first row, rows) -> the id columns of those rows of ``shard``."""
    if column is None:
        def by_row(first: int, n: int) -> dict[str, pa.Array]:
            return {"source": pa.array([shard.name] * n, pa.string()),
                    "row": pa.array(np.arange(first, first + n), pa.int64())}
        return by_row
    values = _read_column(shard.url, column, ingest)

    def by_column(first: int, n: int) -> dict[str, pa.Array]:
        return {column: values.slice(first, n)}
    return by_column


def _read_column(url: str, column: str, ingest: IngestConfig) -> pa.Array:
    import fsspec

    with fsspec.open(url, "rb", **ingest.storage_options) as handle:
        return pq.read_table(handle, columns=[column])[column].combine_chunks()
