"""Token-id shards on disk: int32 ids plus int64 sentence offsets, written atomically.

A shard is a directory holding ``ids.npy``, ``offsets.npy`` (sentence ``s`` is
``ids[offsets[s]:offsets[s + 1]]``) and ``meta.json``. Both arrays are streamed to disk batch by
batch, so memory stays bounded by a batch; the directory appears under its final name only when
complete (written under a temporary name, then renamed), and training memory-maps it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np

from dw2v.errors import InputError

_HEADER_BYTES = 128  # room for any 1-D shape; a multiple of 64 as the .npy format asks


class NpyAppender:
    """Write a 1-D ``.npy`` file whose length is known only at the end.

    The header is written with a placeholder shape padded to a fixed size and rewritten on
    :meth:`close` with the real length, so ``np.load(path, mmap_mode="r")`` reads it as usual.
    """

    def __init__(self, path: Path, dtype: np.dtype[Any] | type, durable: bool = True) -> None:
        self.dtype = np.dtype(dtype)
        self.length = 0
        self.durable = durable  # fsync on close (not for scratch files a crash discards)
        self._file: BinaryIO = open(path, "wb")
        self._write_header()

    def _write_header(self) -> None:
        header = repr({"descr": self.dtype.str, "fortran_order": False,
                       "shape": (self.length,)})
        body = header.encode("latin1")
        pad = _HEADER_BYTES - 10 - len(body) - 1
        self._file.seek(0)
        self._file.write(b"\x93NUMPY\x01\x00" + (_HEADER_BYTES - 10).to_bytes(2, "little"))
        self._file.write(body + b" " * pad + b"\n")

    def append(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype)
        self._file.write(memoryview(values).cast("B"))
        self.length += len(values)

    def close(self) -> None:
        if self._file.closed:
            return
        self._write_header()
        self._file.flush()
        if self.durable:
            os.fsync(self._file.fileno())
        self._file.close()


@dataclass(frozen=True)
class TokenShard:
    """A token-id shard read back (arrays memory-mapped)."""

    path: Path
    ids: np.ndarray
    offsets: np.ndarray
    meta: dict[str, Any]

    @property
    def n_sentences(self) -> int:
        return len(self.offsets) - 1


class TokenShardWriter:
    """Context manager that streams ids and sentence offsets into a shard directory.

    On success the temporary directory is renamed to ``path``; on error it is removed, so a
    shard is either whole or absent.
    """

    def __init__(self, path: Path, meta: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.meta = dict(meta or {})
        self._tmp = self.path.parent / f".{self.path.name}.tmp-{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> "TokenShardWriter":
        self._tmp.mkdir(parents=True)
        self._ids = NpyAppender(self._tmp / "ids.npy", np.int32)
        self._offsets = NpyAppender(self._tmp / "offsets.npy", np.int64)
        self._offsets.append(np.zeros(1, dtype=np.int64))
        return self

    def append(self, ids: np.ndarray, offsets: np.ndarray) -> None:
        """Add sentences: ``ids`` of this batch and their offsets starting at 0."""
        if offsets[0] != 0 or offsets[-1] != len(ids):
            raise ValueError("offsets must start at 0 and end at len(ids)")
        self._offsets.append(offsets[1:] + self._ids.length)
        self._ids.append(ids)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._ids.close()
        self._offsets.close()
        if exc_type is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        self.meta.update(tokens=self._ids.length, sentences=self._offsets.length - 1)
        (self._tmp / "meta.json").write_text(json.dumps(self.meta, indent=1))
        if self.path.exists():  # a recomputed task: its output is the same, replace it
            shutil.rmtree(self.path)
        os.rename(self._tmp, self.path)

    @property
    def tokens(self) -> int:
        return self._ids.length


def read_token_shard(path: str | Path, vocab_size: int | None = None) -> TokenShard:
    """Open a shard written by :class:`TokenShardWriter` (arrays memory-mapped, read-only);
    a missing, truncated or inconsistent shard raises ``InputError`` naming it."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
        ids = np.load(path / "ids.npy", mmap_mode="r")
        offsets = np.load(path / "offsets.npy", mmap_mode="r")
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(str(path), f"token-id shard unreadable ({exc})") from None
    if ids.ndim != 1 or offsets.ndim != 1 or len(offsets) < 1:
        raise InputError(str(path), "token-id shard has arrays of the wrong shape")
    if int(offsets[0]) != 0 or int(offsets[-1]) != len(ids):
        raise InputError(str(path), f"token-id shard is inconsistent: its offsets end at "
                                    f"{int(offsets[-1])} but it holds {len(ids)} ids")
    if vocab_size is not None and len(ids) and int(ids.max()) >= vocab_size:
        raise InputError(str(path), f"token-id shard holds id {int(ids.max())}, outside the "
                                    f"vocabulary of {vocab_size} words")
    return TokenShard(path=path, ids=ids, offsets=offsets, meta=meta)
