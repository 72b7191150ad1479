"""A shard's tokens as the counting pass saw them: ids into each batch's own dictionary.

Counting dictionary-encodes every batch of tokens to count it; keeping those indices, the
batch's dictionary and its tokens per row lets encoding turn them into vocabulary ids with a
lookup of each dictionary in the vocabulary (``dw2v.word_index``) and a ``take``, instead of
reading and tokenizing the text a second time. A directory per shard holds ``ids.npy`` (int32,
each batch's indices into its own dictionary, batch after batch), ``rows.npy`` (int32 tokens
per row), ``dictionaries.arrow`` (an Arrow IPC stream, one record batch per batch) and
``meta.json`` (each batch's tokens, rows and dictionary size). It is written under a temporary
name and renamed when whole, so a half-written one is never read; encoding removes it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Iterator

import numpy as np
import pyarrow as pa

from dw2v.errors import InputError
from dw2v.token_shards import NpyAppender

#: Where the shards' local ids live, under the work directory (removed once encoded).
LOCAL_DIR = ".local-ids"
_SCHEMA = pa.schema([("token", pa.string())])
_META = "meta.json"


@dataclass(frozen=True)
class LocalBatch:
    """One batch's tokens: ``ids`` index ``dictionary``; ``row_lengths`` sum to ``len(ids)``."""

    dictionary: pa.Array
    ids: np.ndarray
    row_lengths: np.ndarray


def local_path(work_dir: str | Path, index: int) -> str:
    """The local-ids directory of input shard ``index`` under ``work_dir``."""
    return str(Path(work_dir) / LOCAL_DIR / f"shard-{index:05d}")


def _own(path: str | Path) -> Path:
    """``path`` if it lies directly in a ``LOCAL_DIR`` directory (where :func:`local_path`
    puts them), else ValueError: what this module replaces or removes is only its own."""
    path = Path(path)
    if path.parent.name != LOCAL_DIR:
        raise ValueError(f"{path}: not a local-ids directory (expected one inside {LOCAL_DIR})")
    return path


class LocalIdsWriter:
    """Context manager that streams a shard's batches into its local-ids directory; on
    success the temporary directory is renamed to ``path``, on error removed."""

    def __init__(self, path: str | Path) -> None:
        self.path = _own(path)
        self._tmp = self.path.parent / f".{self.path.name}.tmp-{uuid.uuid4().hex[:12]}"
        self._batches: list[tuple[int, int, int]] = []

    def __enter__(self) -> "LocalIdsWriter":
        self._tmp.mkdir(parents=True)
        # not fsynced: local ids live only between a run's counting and its encoding, and a
        # run that a crash stopped counts every shard again (0.5 s of a 4 s shard's count)
        self._ids = NpyAppender(self._tmp / "ids.npy", np.int32, durable=False)
        self._rows = NpyAppender(self._tmp / "rows.npy", np.int32, durable=False)
        self._dict_file = pa.OSFile(str(self._tmp / "dictionaries.arrow"), "wb")
        self._dicts = pa.ipc.new_stream(self._dict_file, _SCHEMA)
        return self

    def append(self, dictionary: pa.Array, ids: np.ndarray, row_lengths: np.ndarray) -> None:
        """Add a batch: its dictionary, its tokens as indices into it, its tokens per row."""
        self._ids.append(ids)
        self._rows.append(row_lengths)
        self._dicts.write_batch(pa.record_batch([dictionary], schema=_SCHEMA))
        self._batches.append((len(ids), len(row_lengths), len(dictionary)))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._dicts.close()
            self._dict_file.close()
            self._ids.close()
            self._rows.close()
            if exc_type is None:
                (self._tmp / _META).write_text(json.dumps({"batches": self._batches}))
                if self.path.exists():  # a recomputed count: the same content, replace it
                    shutil.rmtree(self.path)
                os.rename(self._tmp, self.path)
        finally:
            if self._tmp.exists():
                shutil.rmtree(self._tmp, ignore_errors=True)


def remove_local_ids(path: str | Path) -> None:
    """Remove a complete local-ids directory once its shard is encoded (only one of ours:
    inside ``LOCAL_DIR`` and holding its ``meta.json``)."""
    path = _own(path)
    if has_local_ids(path):
        shutil.rmtree(path, ignore_errors=True)


def remove_store(work_dir: str | Path) -> None:
    """Remove the whole ``LOCAL_DIR`` of ``work_dir`` (what encoding left of it: the local ids
    of shards a retried task encoded from the text, temporary directories of failed ones)."""
    shutil.rmtree(Path(work_dir) / LOCAL_DIR, ignore_errors=True)


def has_local_ids(path: str | Path | None) -> bool:
    """Whether a complete local-ids directory is at ``path``."""
    return path is not None and (Path(path) / _META).is_file()


def read_local_ids(path: str | Path) -> Iterator[LocalBatch]:
    """The batches of a local-ids directory, in order (ids and rows memory-mapped); a
    truncated or inconsistent one raises ``InputError`` naming it."""
    path = Path(path)
    try:
        batches = json.loads((path / _META).read_text())["batches"]
        ids = np.load(path / "ids.npy", mmap_mode="r")
        rows = np.load(path / "rows.npy", mmap_mode="r")
        source = pa.memory_map(str(path / "dictionaries.arrow"))
        reader = pa.ipc.open_stream(source)
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        raise InputError(str(path), f"the counting pass's token ids are unreadable ({exc})"
                         ) from None
    if sum(b[0] for b in batches) != len(ids) or sum(b[1] for b in batches) != len(rows):
        raise InputError(str(path), "the counting pass's token ids are inconsistent: their "
                                    "batches do not add up to the arrays")
    token = row = seen = 0
    with source:
        for (n_tokens, n_rows, n_entries), record in zip(batches, reader):
            if record.num_rows != n_entries:
                break
            yield LocalBatch(record.column(0), ids[token:token + n_tokens],
                             rows[row:row + n_rows])
            token, row, seen = token + n_tokens, row + n_rows, seen + 1
    if seen != len(batches):
        raise InputError(str(path), "the counting pass's dictionaries do not match its token "
                                    "ids")
