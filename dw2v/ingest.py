"""Finding Parquet shards, checking them, streaming their text column, and encoding to ids.

Inputs are local paths, directories (every ``*.parquet`` below them), globs or any fsspec URL.
Shards are named by full URLs so that any worker can open them. Only the text column is read,
in record batches, so memory is bounded by the batch size rather than by the file size.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dw2v.config import IngestConfig
from dw2v.errors import InputError, NoInputError
from dw2v.token_shards import TokenShardWriter
from dw2v.tokenize import TokenBatch, sentence_offsets, tokenize

logger = logging.getLogger(__name__)

_GLOB_CHARS = set("*?[")


def _is_text_type(dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or (
        pa.types.is_string_view(dtype))


def find_shards(inputs: Sequence[str], config: IngestConfig) -> list[str]:
    """Expand inputs into a sorted, de-duplicated list of Parquet file URLs.

    Raises :class:`NoInputError` when an input matches nothing or no file matches at all.
    """
    urls: list[str] = []
    for spec in inputs:
        fs, path = fsspec.core.url_to_fs(str(spec), **config.storage_options)
        if any(ch in _GLOB_CHARS for ch in path):
            found = sorted(p for p in fs.glob(path) if fs.isfile(p))
        elif fs.isdir(path):
            found = sorted(p for p in fs.find(path) if p.endswith(".parquet"))
        elif fs.exists(path):
            found = [path]
        else:
            raise NoInputError(f"{spec}: no such file or directory")
        if not found:
            raise NoInputError(f"{spec}: no Parquet file matches")
        urls.extend(fs.unstrip_protocol(p) for p in found)
    unique = list(dict.fromkeys(urls))
    if not unique:
        raise NoInputError("no input given")
    return unique


@dataclass(frozen=True)
class ShardInfo:
    """What a shard's footer says: rows, size, and whether it can be skipped as empty."""

    url: str
    index: int
    rows: int
    size_bytes: int
    text_type: str

    @property
    def empty(self) -> bool:
        return self.rows == 0


@contextmanager
def _open_parquet(url: str, config: IngestConfig) -> Iterator[pq.ParquetFile]:
    with fsspec.open(url, "rb", **config.storage_options) as handle:
        try:
            parquet = pq.ParquetFile(handle)
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
            raise InputError(url, f"not a Parquet file, or truncated ({exc})") from None
        yield parquet


def check_shard(url: str, index: int, config: IngestConfig) -> ShardInfo:
    """Read one footer and check the text column; raise :class:`InputError` naming the file."""
    fs, path = fsspec.core.url_to_fs(url, **config.storage_options)
    size = int(fs.size(path))
    if size == 0:
        return ShardInfo(url=url, index=index, rows=0, size_bytes=0, text_type="")
    column = config.text_column
    with _open_parquet(url, config) as parquet:
        schema = parquet.schema_arrow
        if column not in schema.names:
            present = ", ".join(repr(n) for n in schema.names) or "none"
            raise InputError(url, f"no column {column!r} (columns present: {present}); "
                                  "choose one with --text-column")
        dtype = schema.field(column).type
        if not _is_text_type(dtype):
            raise InputError(url, f"column {column!r} is {dtype}, expected a string column")
        rows = parquet.metadata.num_rows
        _check_not_all_null(url, parquet, column, rows)
    return ShardInfo(url=url, index=index, rows=rows, size_bytes=size, text_type=str(dtype))


def _check_not_all_null(url: str, parquet: pq.ParquetFile, column: str, rows: int) -> None:
    """Use the footer's null counts, when written, to refuse an all-null text column early."""
    if rows == 0:
        return
    meta = parquet.metadata
    position = parquet.schema_arrow.get_field_index(column)
    nulls = 0
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(position).statistics
        if stats is None or not stats.has_null_count:
            return
        nulls += stats.null_count
    if nulls == rows:
        raise _all_null(url, column, rows)


def _all_null(url: str, column: str, rows: int) -> InputError:
    return InputError(url, f"column {column!r} is entirely null ({rows} rows): no text to read")


def iter_text(shard: ShardInfo, config: IngestConfig) -> Iterator[pa.Array]:
    """Yield the text column of a shard in record batches, checked for valid UTF-8, cut into
    pieces of at most ``PIECE_BYTES`` of text."""
    if shard.empty:
        return
    column = config.text_column
    start = 0
    with _open_parquet(shard.url, config) as parquet:
        batches = parquet.iter_batches(batch_size=config.batch_size, columns=[column],
                                       use_threads=False)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise InputError(shard.url, f"corrupt data after row {start} ({exc})") from None
            text = batch.column(0)
            if pa.types.is_dictionary(text.type):
                text = text.dictionary_decode()
            try:
                text.validate(full=True)
            except pa.ArrowInvalid as exc:
                raise InputError(shard.url, f"invalid UTF-8 in column {column!r} in rows "
                                            f"{start}..{start + len(text) - 1} ({exc})") from None
            yield from _pieces(text, PIECE_BYTES)
            start += len(text)


#: Text handed to the tokenizer at once, at most (a longer row goes alone): what one tokenized
#: batch and its count table hold is bounded by this, whatever the rows per batch.
PIECE_BYTES = 8 * 2**20


def _pieces(text: pa.Array, max_bytes: int) -> Iterator[pa.Array]:
    """Cut a batch into runs of whole rows holding at most ``max_bytes`` of text each."""
    if text.nbytes <= max_bytes or len(text) < 2:
        yield text
        return
    ends = np.cumsum(pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False))
    lo = 0
    while lo < len(text):
        before = int(ends[lo - 1]) if lo else 0
        hi = max(int(np.searchsorted(ends, before + max_bytes, side="right")), lo + 1)
        yield text.slice(lo, hi - lo)
        lo = hi


@dataclass(frozen=True)
class EncodedShard:
    """Where one input shard's token ids went, and how much they hold."""

    source: str
    index: int
    path: str
    tokens: int
    sentences: int


def shard_dir_name(index: int) -> str:
    return f"shard-{index:05d}"


#: Batches are looked up in groups holding at least this many distinct tokens (or the
#: vocabulary's size, if larger), so the vocabulary's hash table, which Arrow rebuilds on
#: every ``index_in`` call, is built once per that many lookups rather than once per batch.
_MIN_LOOKUP = 200_000
#: ... but never more than this many batches at once: encoding memory is bounded by it.
_MAX_PENDING_BATCHES = 8


def _encode_pending(pending: list[tuple[TokenBatch, pa.DictionaryArray]],
                    vocab_tokens: pa.Array, writer: TokenShardWriter, max_length: int) -> None:
    """Look up the batches' dictionaries in one call, then write each batch's known ids."""
    if not pending:
        return
    dictionaries = pa.concat_arrays([encoded.dictionary for _, encoded in pending])
    found = pc.index_in(dictionaries, value_set=vocab_tokens)
    ids_of_entries = found.fill_null(-1).to_numpy().astype(np.int32, copy=False)
    base = 0
    for batch, encoded in pending:
        ids = ids_of_entries[encoded.indices.to_numpy() + base]
        base += len(encoded.dictionary)
        known = ids >= 0
        lengths = np.bincount(batch.rows[known], minlength=batch.n_rows)
        writer.append(ids[known], sentence_offsets(lengths, max_length))
    pending.clear()


def encode_shard(shard: ShardInfo, vocab_tokens: pa.Array, work_dir: str,
                 config: IngestConfig) -> EncodedShard:
    """Write the token ids of one shard (out-of-vocabulary tokens dropped) under ``work_dir``.

    ``vocab_tokens[i]`` is the token with id ``i``. Tokens are those counting saw: the same
    :func:`~dw2v.tokenize.tokenize`, so tokens over ``max_token_bytes`` are dropped here too,
    even if the vocabulary holds one (a base model's, in continued training). Sentences are
    rows, cut at ``max_sentence_length`` ids after out-of-vocabulary tokens are dropped. Memory:
    up to ``_MAX_PENDING_BATCHES`` tokenized batches plus the vocabulary.
    """
    target = Path(work_dir) / shard_dir_name(shard.index)
    max_length = config.tokenizer.max_sentence_length
    group = max(_MIN_LOOKUP, len(vocab_tokens))
    pending: list[tuple[TokenBatch, pa.DictionaryArray]] = []
    distinct = 0
    with TokenShardWriter(target, meta={"source": shard.url, "rows": shard.rows}) as writer:
        for text in iter_text(shard, config):
            batch = tokenize(text, config.tokenizer)
            encoded = pc.dictionary_encode(batch.tokens)
            pending.append((batch, encoded))
            distinct += len(encoded.dictionary)
            if distinct >= group or len(pending) >= _MAX_PENDING_BATCHES:
                _encode_pending(pending, vocab_tokens, writer, max_length)
                distinct = 0
        _encode_pending(pending, vocab_tokens, writer, max_length)
    meta = writer.meta
    return EncodedShard(source=shard.url, index=shard.index, path=target.name,
                        tokens=meta["tokens"], sentences=meta["sentences"])
