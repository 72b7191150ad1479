"""The vocabulary as a hash table: the ids of many strings at once, built once per process.

Encoding asks, for every batch's dictionary, which entry is which vocabulary word. Arrow's
``index_in`` answers that exactly but builds its hash table anew on every call; this one is
built once (``kernels.lookup``) and kept for the vocabulary it was built from, so that a worker
encoding many shards builds it once.
"""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa


def string_buffers(strings: pa.Array, nulls: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The int64 offsets and uint8 data of a string array without nulls (slices allowed;
    with ``nulls``, an array with nulls too, whose slots then mean nothing)."""
    if strings.null_count and not nulls:
        raise ValueError("strings to look up hold nulls")
    if not pa.types.is_string(strings.type):
        strings = strings.cast(pa.string())
    _, offsets, data = strings.buffers()
    n = len(strings)
    off = np.frombuffer(offsets, np.int32)[strings.offset:strings.offset + n + 1] if n else (
        np.zeros(1, np.int32))
    raw = np.frombuffer(data, np.uint8) if data is not None and data.size else np.zeros(1, np.uint8)
    return off.astype(np.int64), raw


class WordIndex:
    """Exact string -> id lookup for ``tokens`` (token ``i`` has id ``i``)."""

    def __init__(self, tokens: pa.Array) -> None:
        from dw2v.kernels.lookup import build_table, string_hashes  # Numba: not at import

        self.tokens = tokens
        self._offsets, self._data = string_buffers(tokens)
        size = 1 << max(4, int(2 * max(len(tokens), 1) - 1).bit_length())  # load <= 1/2
        self._keys = np.zeros(size, np.uint64)
        self._slots = np.full(size, -1, np.int32)
        hashes = np.empty(len(tokens), np.uint64)
        string_hashes(self._offsets, self._data, hashes)
        build_table(hashes, self._keys, self._slots)

    def ids(self, strings: pa.Array) -> np.ndarray:
        """The id of each string (int32), -1 for a string that is not a token."""
        from dw2v.kernels.lookup import confirm, probe_exact, probe_table, string_hashes

        offsets, data = string_buffers(strings)
        hashes = np.empty(len(strings), np.uint64)
        string_hashes(offsets, data, hashes)
        found = np.empty(len(strings), np.int32)
        probe_table(self._keys, self._slots, hashes, found)
        if confirm(self._offsets, self._data, offsets, data, found):
            probe_exact(self._keys, self._slots, self._offsets, self._data, offsets, data,
                        hashes, np.flatnonzero(found == -2), found)
        return found


_LOCK = threading.Lock()
_LAST: list[WordIndex] = []


def index_of(tokens: pa.Array) -> WordIndex:
    """The :class:`WordIndex` of ``tokens``, the one built before when it was built for this
    very array (a worker receives the vocabulary once and hands each task the same object)."""
    with _LOCK:
        if _LAST and _LAST[0].tokens is tokens:
            return _LAST[0]
    index = WordIndex(tokens)
    with _LOCK:
        _LAST[:] = [index]
    return index
