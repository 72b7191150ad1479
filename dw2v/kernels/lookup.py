"""Numba kernels that find strings in a fixed set: a hash table over Arrow string buffers.

Encoding looks every batch's dictionary up in the vocabulary. Arrow's ``index_in`` rebuilds
its hash table on every call (0.25 s for a million words), which made the lookup the larger
part of encoding; this table is built once per vocabulary and probed per batch. Keys are
FNV-1a 64-bit hashes of the UTF-8 bytes (finished with MurmurHash3's mixer), open addressing
with linear probing, and a hit is confirmed by comparing the bytes, so the result is exact
even when two strings share a hash. A probe is three passes (hash, find, compare) rather than
one loop: each pass's iterations are independent, so the processor overlaps their cache
misses (one fused loop measured 3x slower on a million-word vocabulary).
Arrays in, arrays out: strings are ``(offsets, data)`` pairs as Arrow lays them out.
"""

from __future__ import annotations

import numpy as np
from numba import njit

FNV_OFFSET = np.uint64(14695981039346656037)
FNV_PRIME = np.uint64(1099511628211)


@njit(cache=True, nogil=True)
def _hash(data: np.ndarray, lo: int, hi: int) -> np.uint64:
    h = FNV_OFFSET
    for k in range(lo, hi):
        h = (h ^ np.uint64(data[k])) * FNV_PRIME
    return finish_hash(h)


@njit(cache=True, nogil=True)
def finish_hash(h: np.uint64) -> np.uint64:
    """MurmurHash3's 64-bit finalizer: FNV's low bits, which pick the slot, are poorly mixed
    for short strings."""
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


@njit(cache=True, nogil=True)
def _same(a: np.ndarray, a_lo: int, a_hi: int, b: np.ndarray, b_lo: int, b_hi: int) -> bool:
    if a_hi - a_lo != b_hi - b_lo:
        return False
    for k in range(a_hi - a_lo):
        if a[a_lo + k] != b[b_lo + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def string_hashes(offsets: np.ndarray, data: np.ndarray, out: np.ndarray) -> None:
    """``out[i]``: the 64-bit hash of string ``i``."""
    for i in range(out.shape[0]):
        out[i] = _hash(data, offsets[i], offsets[i + 1])


@njit(cache=True, nogil=True)
def build_table(hashes: np.ndarray, keys: np.ndarray, slots: np.ndarray) -> None:
    """Insert strings ``0..n-1`` (by their ``hashes``) into an empty table: ``keys`` (uint64)
    and ``slots`` (int32 string index, -1 for empty), both of a power-of-two length above n."""
    mask = slots.shape[0] - 1
    for i in range(hashes.shape[0]):
        h = hashes[i]
        s = np.int64(h & np.uint64(mask))
        while slots[s] >= 0:
            s = (s + 1) & mask
        keys[s] = h
        slots[s] = i


@njit(cache=True, nogil=True)
def probe_table(keys: np.ndarray, slots: np.ndarray, hashes: np.ndarray,
                out: np.ndarray) -> None:
    """``out[j]``: the first string in the table whose hash is ``hashes[j]``, -1 for none (a
    candidate: :func:`confirm` compares the bytes)."""
    mask = slots.shape[0] - 1
    for j in range(hashes.shape[0]):
        h = hashes[j]
        s = np.int64(h & np.uint64(mask))
        while slots[s] >= 0 and keys[s] != h:
            s = (s + 1) & mask
        out[j] = slots[s]


@njit(cache=True, nogil=True)
def confirm(offsets: np.ndarray, data: np.ndarray, query_offsets: np.ndarray,
            query_data: np.ndarray, found: np.ndarray) -> int:
    """Set ``found[j]`` to -2 where candidate string ``found[j]`` (of ``offsets``/``data``)
    differs from query string ``j`` (a shared hash); returns how many."""
    clashes = 0
    for j in range(found.shape[0]):
        i = found[j]
        if i >= 0 and not _same(data, offsets[i], offsets[i + 1],
                                query_data, query_offsets[j], query_offsets[j + 1]):
            found[j] = -2
            clashes += 1
    return clashes


@njit(cache=True, nogil=True)
def probe_exact(keys: np.ndarray, slots: np.ndarray, offsets: np.ndarray, data: np.ndarray,
                query_offsets: np.ndarray, query_data: np.ndarray, hashes: np.ndarray,
                which: np.ndarray, found: np.ndarray) -> None:
    """For the queries ``which`` (those :func:`confirm` set to -2): walk the whole run of equal
    hashes, comparing bytes, so ``found[j]`` is the string's index or -1."""
    mask = slots.shape[0] - 1
    for j in which:
        h = hashes[j]
        lo, hi = query_offsets[j], query_offsets[j + 1]
        s = np.int64(h & np.uint64(mask))
        found[j] = -1
        while slots[s] >= 0:
            i = slots[s]
            if keys[s] == h and _same(data, offsets[i], offsets[i + 1], query_data, lo, hi):
                found[j] = i
                break
            s = (s + 1) & mask
