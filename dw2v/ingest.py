"""Finding input shards, checking them, streaming their text, and encoding to ids.

Inputs are local paths, directories (every ``*.parquet`` and ``*.txt`` below them, the text
compressed or not), globs or any fsspec URL. Shards are named by full URLs so that any worker
can open them. Two kinds:

- Parquet: only the text column is read, in record batches, so memory is bounded by the
  batch size rather than by the file size.
- Plain text, as word2vec C, fastText and gensim's ``LineSentence`` read it: one document per
  line, UTF-8, ``\n`` or ``\r\n`` line ends; gzip, bz2 or zstd when the name ends in
  ``.gz``, ``.bz2`` or ``.zst`` (Arrow decompresses). Uncompressed text is split into byte ranges
  (``split_text_shards``, sized by ``prepare.text_block``), each its own shard: a range
  holds the lines that start in it (``fsspec.utils.read_block``, as Dask's ``read_text``
  with a blocksize), so every line is read once. A compressed file is one shard.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import fsspec
import fsspec.utils
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dw2v.config import IngestConfig
from dw2v.errors import InputError, NoInputError
from dw2v.local_ids import LocalBatch, has_local_ids, read_local_ids, remove_local_ids
from dw2v.token_shards import TokenShardWriter
from dw2v.tokenize import lengths_after, sentence_offsets, tokenize_ids
from dw2v.word_index import index_of

logger = logging.getLogger(__name__)

_GLOB_CHARS = set("*?[")
#: Compressed text by name: Arrow's codec for each ending.
TEXT_CODECS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
#: The names a directory's text files have (explicit files and globs may be named anything).
TEXT_SUFFIXES = (".txt", *(".txt" + s for s in TEXT_CODECS))
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class MemoryCorpus:
    """A corpus already in memory, each part a shard: a Dask collection's partitions (Dask
    Series or DataFrame: the text column; Bag: strings or token lists), trained where Dask
    computes them, or an Arrow table's (or array's) slices, sent to the workers."""

    parts: tuple[Any, ...]
    kind: str  # "dask" or "arrow"

    def __len__(self) -> int:
        return len(self.parts)


#: Text of an in-memory Arrow corpus per shard, about.
MEMORY_SHARD_BYTES = 64 * 2**20


def as_inputs(inputs: Any) -> list[str] | MemoryCorpus:
    """What a job reads: one path (or URL) or several, as a list of strings (a single string
    is one input, not its characters); a ``pyarrow.dataset`` Dataset as its files; a Dask
    collection or an Arrow table or array as a :class:`MemoryCorpus`."""
    if isinstance(inputs, MemoryCorpus):
        return inputs
    if isinstance(inputs, (str, os.PathLike)):
        return [os.fspath(inputs)]
    if hasattr(inputs, "__dask_graph__") and hasattr(inputs, "to_delayed"):
        return MemoryCorpus(tuple(inputs.to_delayed()), "dask")
    if isinstance(inputs, (pa.Table, pa.RecordBatch, pa.Array, pa.ChunkedArray)):
        rows_per = max(1, int(len(inputs) * MEMORY_SHARD_BYTES / max(inputs.nbytes, 1)))
        return MemoryCorpus(tuple(inputs.slice(lo, rows_per)
                                  for lo in range(0, max(len(inputs), 1), rows_per)), "arrow")
    files = getattr(inputs, "files", None)  # a pyarrow.dataset.FileSystemDataset
    if files is not None and not isinstance(inputs, (list, tuple)):
        return [os.fspath(f) for f in files]
    return [os.fspath(p) for p in inputs]


def paths_of(inputs: list[str] | MemoryCorpus) -> list[str]:
    """The files of ``inputs`` (none for a corpus in memory), for the checks on paths."""
    return [] if isinstance(inputs, MemoryCorpus) else list(inputs)


def memory_shards(corpus: MemoryCorpus) -> list[ShardInfo]:
    return [ShardInfo(url=f"<{corpus.kind} partition {i}>", index=i, rows=0, size_bytes=1,
                      text_type="memory", kind="memory") for i in range(len(corpus))]


def _memory_text(shard: ShardInfo, data: Any, config: IngestConfig) -> Iterator[pa.Array]:
    """A partition's text as Arrow strings or token lists, in pieces."""
    column = config.text_column
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        if column not in data.schema.names:
            raise InputError(shard.url, f"no column {column!r} (columns: "
                                        f"{', '.join(data.schema.names)})")
        data = data.column(column)
    elif hasattr(data, "columns") and hasattr(data, "iloc"):  # a pandas DataFrame
        if column not in data.columns:
            raise InputError(shard.url, f"no column {column!r} (columns: "
                                        f"{', '.join(map(str, data.columns))})")
        data = data[column]
    if hasattr(data, "iloc"):  # a pandas Series
        data = pa.array(data, from_pandas=True)
    elif isinstance(data, (list, tuple)):  # a Bag's partition
        data = pa.array([None if t is None else (list(t) if isinstance(t, tuple) else t)
                         for t in data])
    if isinstance(data, pa.ChunkedArray):
        data = data.combine_chunks()
    if len(data) == 0:
        return
    if pa.types.is_dictionary(data.type):
        data = data.dictionary_decode()
    if pa.types.is_null(data.type):
        return
    if not (_is_text_type(data.type) or is_token_lists(data.type)):
        raise InputError(shard.url, f"holds {data.type}, expected strings (or lists of "
                                    "strings: tokens)")
    yield from _pieces(data, PIECE_BYTES)


def _is_text_type(dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or (
        pa.types.is_string_view(dtype))


def is_token_lists(dtype: pa.DataType) -> bool:
    """A column of pre-tokenized text: lists of strings (``list<string>`` and the like)."""
    return ((pa.types.is_list(dtype) or pa.types.is_large_list(dtype)
             or pa.types.is_list_view(dtype)) and _is_text_type(dtype.value_type))


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
            found = sorted(p for p in fs.find(path)
                           if p.endswith(".parquet") or p.endswith(TEXT_SUFFIXES))
        elif fs.exists(path):
            found = [path]
        else:
            raise NoInputError(f"{spec}: no such file or directory")
        if not found:
            raise NoInputError(f"{spec}: no Parquet or text file matches")
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
    #: "parquet", or "text" (lines); a text shard's rows are not known before it is read.
    kind: str = "parquet"
    #: A compressed text file's Arrow codec ("gzip", "bz2", "zstd"), else None.
    codec: str | None = None
    #: A byte range of an uncompressed text file: its start and length (-1: the whole file).
    offset: int = 0
    length: int = -1
    #: A Parquet file's rows in each row group (from its footer), and the range of row groups
    #: ``[group_lo, group_hi)`` this shard reads (-1: to the end): a file of several row
    #: groups is cut along them when there are fewer files than workers need.
    group_rows: tuple[int, ...] = ()
    group_lo: int = 0
    group_hi: int = -1

    @property
    def empty(self) -> bool:
        return self.size_bytes == 0 or (self.kind == "parquet" and self.rows == 0)

    @property
    def first_part(self) -> bool:
        """Whether this shard starts its file (a file is counted once, by its first part)."""
        return self.offset == 0 and self.group_lo == 0

    @property
    def weight(self) -> int:
        """Bytes this shard reads (for progress bars: comparable across kinds)."""
        if self.length >= 0:
            return self.length
        if self.group_hi >= 0 and self.group_rows:  # some row groups: their share of rows
            total = max(sum(self.group_rows), 1)
            return self.size_bytes * sum(self.group_rows[self.group_lo:self.group_hi]) // total
        return self.size_bytes

    @property
    def name(self) -> str:
        """The URL, with its byte range or row groups when it is part of a file (messages)."""
        if self.length >= 0:
            return f"{self.url} (bytes {self.offset:,}..{self.offset + self.length:,})"
        if self.group_hi >= 0:
            return f"{self.url} (row groups {self.group_lo}..{self.group_hi - 1})"
        return self.url


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
    with fs.open(path, "rb") as handle:
        magic = handle.read(len(PARQUET_MAGIC))
    if magic != PARQUET_MAGIC and not path.endswith(".parquet"):
        return _check_text(url, index, size, config)
    column = config.text_column
    with _open_parquet(url, config) as parquet:
        schema = parquet.schema_arrow
        if column not in schema.names:
            present = ", ".join(repr(n) for n in schema.names) or "none"
            raise InputError(url, f"no column {column!r} (columns present: {present}); "
                                  "choose one with --text-column")
        dtype = schema.field(column).type
        if not (_is_text_type(dtype) or is_token_lists(dtype)):
            raise InputError(url, f"column {column!r} is {dtype}, expected a string column "
                                  "(or lists of strings: tokens)")
        rows = parquet.metadata.num_rows
        _check_not_all_null(url, parquet, column, rows)
        groups = tuple(parquet.metadata.row_group(g).num_rows
                       for g in range(parquet.metadata.num_row_groups))
    return ShardInfo(url=url, index=index, rows=rows, size_bytes=size, text_type=str(dtype),
                     group_rows=groups)


def _codec_of(url: str) -> str | None:
    return next((codec for suffix, codec in TEXT_CODECS.items() if url.endswith(suffix)), None)


def _check_text(url: str, index: int, size: int, config: IngestConfig) -> ShardInfo:
    """A text file: its first bytes must decompress (when compressed) and not be binary."""
    codec = _codec_of(url)
    with _open_text(url, codec, config) as stream:
        head = _read(stream, url, 4096)
    if b"\0" in head:
        raise InputError(url, "not a text file (it holds NUL bytes) nor a Parquet file")
    return ShardInfo(url=url, index=index, rows=0, size_bytes=size, text_type="text",
                     kind="text", codec=codec)


def split_parquet_shards(infos: Sequence[ShardInfo], pieces: int) -> list[ShardInfo]:
    """Parquet files of several row groups cut along them, so that the shards number about
    ``pieces`` (each file in proportion to its rows, each part of about equal rows, a row
    group never cut), when the files alone are fewer; every shard numbered again in order."""
    live = [i for i in infos if not i.empty]
    if len(live) >= pieces:
        return list(infos)
    rows = max(sum(i.rows for i in live if i.kind == "parquet"), 1)
    out: list[ShardInfo] = []
    for info in infos:
        groups = info.group_rows
        want = min(len(groups), -(-pieces * info.rows // rows)) if info.kind == "parquet" else 1
        if info.empty or want <= 1:
            out.append(info)
            continue
        ends = np.cumsum(groups)
        cuts = np.searchsorted(ends, np.linspace(0, ends[-1], want + 1)[1:-1], side="left") + 1
        bounds = [0, *sorted({int(c) for c in cuts if 0 < c < len(groups)}), len(groups)]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            out.append(replace(info, rows=int(sum(groups[lo:hi])), group_lo=lo, group_hi=hi))
    return [replace(info, index=i) for i, info in enumerate(out)]


def split_text_shards(infos: Sequence[ShardInfo], block_bytes: int) -> list[ShardInfo]:
    """Uncompressed text files above ``block_bytes`` as byte ranges of that size, each a
    shard of its own; every shard numbered again in order."""
    out: list[ShardInfo] = []
    for info in infos:
        if info.kind != "text" or info.codec is not None or info.size_bytes <= block_bytes:
            out.append(info)
            continue
        for offset in range(0, info.size_bytes, block_bytes):
            out.append(replace(info, offset=offset,
                               length=min(block_bytes, info.size_bytes - offset)))
    return [replace(info, index=i) for i, info in enumerate(out)]


@contextmanager
def _open_text(url: str, codec: str | None, config: IngestConfig) -> Iterator[Any]:
    with fsspec.open(url, "rb", **config.storage_options) as handle:
        if codec is None:
            yield handle
        else:
            with pa.CompressedInputStream(pa.PythonFile(handle, mode="r"), codec) as stream:
                yield stream


def _read(stream: Any, url: str, n: int) -> bytes:
    try:
        return bytes(stream.read(n))
    except (OSError, EOFError, ValueError, pa.ArrowException) as exc:
        raise InputError(url, f"corrupt or truncated compressed data ({exc})") from None


def _text_chunks(shard: ShardInfo, config: IngestConfig) -> Iterator[tuple[int, bytes]]:
    """The shard's text as (byte offset, chunk of whole lines of about PIECE_BYTES)."""
    with _open_text(shard.url, shard.codec, config) as stream:
        if shard.length >= 0:  # a byte range: the lines that start in it
            data = fsspec.utils.read_block(stream, shard.offset, shard.length, b"\n")
            start = shard.offset if shard.offset == 0 else _line_start(stream, shard.offset)
            lo = 0
            while lo < len(data):
                end = lo + PIECE_BYTES
                hi = len(data) if end >= len(data) else data.rfind(b"\n", lo, end) + 1
                if hi <= lo:  # a line longer than a piece goes whole
                    hi = data.find(b"\n", end) + 1 or len(data)
                yield start + lo, data[lo:hi]
                lo = hi
            return
        carry, position = b"", 0
        while True:
            chunk = _read(stream, shard.url, PIECE_BYTES)
            if not chunk:
                break
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            if cut:
                yield position, data[:cut]
                position += cut
            carry = data[cut:]
        if carry:
            yield position, carry


def _line_start(stream: Any, offset: int) -> int:
    """Where the first line starting at or after ``offset`` begins (read_block's rule)."""
    stream.seek(offset)
    skipped = 0
    while True:
        piece = stream.read(65_536)
        if not piece:
            return offset + skipped
        newline = piece.find(b"\n")
        if newline >= 0:
            return offset + skipped + newline + 1
        skipped += len(piece)


def _lines(shard: ShardInfo, position: int, data: bytes) -> pa.Array:
    """One chunk's lines (line ends and a final ``\r`` removed), checked for UTF-8."""
    lines = pc.split_pattern(pa.array([data], pa.large_binary()), "\n").flatten()
    if data.endswith(b"\n"):
        lines = lines.slice(0, len(lines) - 1)
    try:
        text = lines.cast(pa.large_string())
    except pa.ArrowInvalid:
        starts = np.concatenate([[0], np.cumsum(pc.binary_length(lines).to_numpy() + 1)])
        for i, line in enumerate(lines.to_pylist()):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(shard.url, f"invalid UTF-8 in the line at byte "
                                            f"{position + int(starts[i]):,} ({exc.reason} "
                                            f"at its byte {exc.start})") from None
        raise
    return pc.utf8_rtrim(text, characters="\r").cast(pa.string())


def _iter_text_lines(shard: ShardInfo, config: IngestConfig) -> Iterator[pa.Array]:
    for position, data in _text_chunks(shard, config):
        yield from _pieces(_lines(shard, position, data), PIECE_BYTES)


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


def iter_text(shard: ShardInfo, config: IngestConfig, data: Any = None) -> Iterator[pa.Array]:
    """Yield the text column of a shard in record batches, checked for valid UTF-8, cut into
    pieces of at most ``PIECE_BYTES`` of text (``data``: an in-memory shard's partition)."""
    if shard.kind == "memory":
        yield from _memory_text(shard, data, config)
        return
    if shard.empty:
        return
    if shard.kind == "text":
        yield from _iter_text_lines(shard, config)
        return
    column = config.text_column
    start = sum(shard.group_rows[:shard.group_lo])  # the file's row this shard starts at
    with _open_parquet(shard.url, config) as parquet:
        groups = (None if shard.group_hi < 0
                  else list(range(shard.group_lo, shard.group_hi)))
        batches = parquet.iter_batches(batch_size=config.batch_size, columns=[column],
                                       row_groups=groups, use_threads=False)
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
    if is_token_lists(text.type):  # bytes per row: its tokens' bytes
        sizes = np.bincount(np.asarray(pc.list_parent_indices(text)), minlength=len(text),
                            weights=pc.fill_null(pc.binary_length(text.flatten()), 0)
                            .to_numpy(zero_copy_only=False))
    else:
        sizes = pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False)
    ends = np.cumsum(sizes)
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


def _tokenized(shard: ShardInfo, config: IngestConfig, data: Any) -> Iterator[LocalBatch]:
    """The shard's text tokenized again, batch by batch, in the shape the counting pass keeps
    (for a shard whose local ids are not there)."""
    for text in iter_text(shard, config, data):
        batch = tokenize_ids(text, config.tokenizer)
        yield LocalBatch(batch.dictionary, batch.ids, batch.row_lengths)


def encode_shard(shard: ShardInfo, vocab_tokens: pa.Array, work_dir: str,
                 config: IngestConfig, data: Any = None,
                 local: str | None = None) -> EncodedShard:
    """Write the token ids of one shard (out-of-vocabulary tokens dropped) under ``work_dir``.

    ``vocab_tokens[i]`` is the token with id ``i``. The tokens are the counting pass's: read
    from ``local`` (its local ids, :mod:`dw2v.local_ids`; removed once the shard is written)
    when that holds them, else tokenized again from the text with the same
    :func:`~dw2v.tokenize.tokenize` (tokens over ``max_token_bytes`` are dropped either way,
    even if the vocabulary holds one: a base model's, in continued training). Sentences are
    rows, cut at ``max_sentence_length`` ids after out-of-vocabulary tokens are dropped.
    Memory: a batch, plus the vocabulary and its hash table (:mod:`dw2v.word_index`).
    """
    target = Path(work_dir) / shard_dir_name(shard.index)
    max_length = config.tokenizer.max_sentence_length
    words = index_of(vocab_tokens)  # built once per worker and vocabulary
    from_local = has_local_ids(local)
    batches = read_local_ids(str(local)) if from_local else _tokenized(shard, config, data)
    with TokenShardWriter(target, meta={"source": shard.name, "rows": shard.rows}) as writer:
        for batch in batches:
            ids = words.ids(batch.dictionary)[batch.ids]
            known = ids >= 0
            lengths = lengths_after(batch.row_lengths, known)
            writer.append(ids[known], sentence_offsets(lengths, max_length))
    if from_local:
        remove_local_ids(str(local))
    meta = writer.meta
    return EncodedShard(source=shard.url, index=shard.index, path=target.name,
                        tokens=meta["tokens"], sentences=meta["sentences"])
