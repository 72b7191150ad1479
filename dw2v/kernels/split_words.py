"""Numba kernel that splits text into words and dictionary-encodes them.

The default tokenizer maps every byte through a table (ASCII bytes that cannot be part of a
word become spaces, ASCII capitals lowercase), splits on spaces and dictionary-encodes the
words. With Arrow that is three passes and a string array of every token in between
(``ascii_split_whitespace``, ``flatten``, ``dictionary_encode``: 3.8 s of a 4.1 s count of
one 14.7 M-token shard of Zipf text); here it is one scan of the bytes per chunk of words
(each word's start, length, FNV-1a hash finished by :func:`dw2v.kernels.lookup.finish_hash`,
and first 8 bytes) and a lookup of each word in an open-addressing table of the
words seen so far, confirmed byte for byte, so the result is exact. Ids are given in order of
first appearance, as ``dictionary_encode`` gives them, so the output is Arrow's.
Arrays in, arrays out: the text is ``(offsets, data)`` as Arrow lays out a string array.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dw2v.kernels.lookup import FNV_OFFSET, FNV_PRIME, finish_hash

_SPACE = 32
_APOSTROPHE = 39
_FIRST_SLOTS = 1 << 12
_CHUNK_WORDS = 1 << 14  # words found per scan, then looked up
_HASH, _PREFIX, _ENTRY = range(3)  # a slot: hash, first 8 bytes, (id + 1) << 32 | length


@njit(cache=True, nogil=True)
def _grow(array: np.ndarray, used: int, need: int) -> np.ndarray:
    """A copy of ``array[:used]`` with room for at least ``need`` entries (twice as many)."""
    bigger = np.empty(max(2 * array.shape[0], need), dtype=array.dtype)
    bigger[:used] = array[:used]
    return bigger


@njit(cache=True, nogil=True)
def _rehash(table: np.ndarray, size: int) -> np.ndarray:
    """``table``'s entries in a table of ``size`` slots (a power of two)."""
    bigger = np.zeros((size, 3), dtype=np.uint64)
    mask = size - 1
    for t in range(table.shape[0]):
        if table[t, _ENTRY] == 0:
            continue
        s = np.int64(table[t, _HASH] & np.uint64(mask))
        while bigger[s, _ENTRY] != 0:
            s = (s + 1) & mask
        bigger[s, :] = table[t, :]
    return bigger


@njit(cache=True, nogil=True)
def _scan(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray, byte_map: np.ndarray,
          r: int, p: int, row_lengths: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
          hashes: np.ndarray, prefixes: np.ndarray) -> tuple[int, int, int, bool]:
    """Find up to ``len(starts)`` words from string ``r``, byte ``p`` on: each word's start,
    length, hash and first 8 mapped bytes (little-endian); counts words per row. Returns where
    to go on (string, byte), how many words were found and whether one is special."""
    n_rows = offsets.shape[0] - 1
    check_valid = valid.shape[0] > 0
    found = 0
    special = False
    while r < n_rows and found < starts.shape[0]:
        stop = offsets[r + 1]
        if check_valid and not valid[r]:
            p = stop
        while p < stop and found < starts.shape[0]:
            byte = byte_map[data[p]]
            if byte == _SPACE:
                p += 1
                continue
            lo = p
            h = FNV_OFFSET
            prefix = np.uint64(0)
            while p < stop:
                byte = byte_map[data[p]]
                if byte == _SPACE:
                    break
                h = (h ^ np.uint64(byte)) * FNV_PRIME
                if p - lo < 8:
                    prefix |= np.uint64(byte) << np.uint64(8 * (p - lo))
                special = special or byte >= 0x80 or byte == _APOSTROPHE
                p += 1
            starts[found] = lo
            lengths[found] = p - lo
            hashes[found] = finish_hash(h)
            prefixes[found] = prefix
            found += 1
            row_lengths[r] += 1
        if p >= stop:
            r += 1
            if r < n_rows:
                p = offsets[r]
    return r, p, found, special


@njit(cache=True, nogil=True)
def _scan_whole(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray,
                byte_map: np.ndarray, r: int, row_lengths: np.ndarray, starts: np.ndarray,
                lengths: np.ndarray, hashes: np.ndarray, prefixes: np.ndarray
                ) -> tuple[int, int, int, bool]:
    """:func:`_scan` where each valid string is one word, whatever bytes it holds."""
    n_rows = offsets.shape[0] - 1
    check_valid = valid.shape[0] > 0
    found = 0
    special = False
    while r < n_rows and found < starts.shape[0]:
        if not check_valid or valid[r]:
            lo, hi = offsets[r], offsets[r + 1]
            h = FNV_OFFSET
            prefix = np.uint64(0)
            for q in range(lo, hi):
                byte = byte_map[data[q]]
                h = (h ^ np.uint64(byte)) * FNV_PRIME
                if q - lo < 8:
                    prefix |= np.uint64(byte) << np.uint64(8 * (q - lo))
                special = special or byte >= 0x80 or byte == _APOSTROPHE
            starts[found] = lo
            lengths[found] = hi - lo
            hashes[found] = finish_hash(h)
            prefixes[found] = prefix
            found += 1
            row_lengths[r] = 1
        r += 1
    return r, 0, found, special


@njit(cache=True, nogil=True)
def _rest_matches(data: np.ndarray, lo: int, n: int, byte_map: np.ndarray,
                  words: np.ndarray, w_lo: int) -> bool:
    """Whether mapped bytes ``data[lo + 8:lo + n]`` equal ``words[w_lo + 8:w_lo + n]`` (the
    first 8 were compared in the table's slot)."""
    for k in range(8, n):
        if byte_map[data[lo + k]] != words[w_lo + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def split_encode(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray, byte_map: np.ndarray,
                 whole: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """Words of each string (bytes mapped by ``byte_map``, split on spaces), dictionary-encoded.

    ``offsets`` (int64, n + 1) and ``data`` (uint8): the strings; ``valid`` (bool, n, or
    length 0 for all valid): a string that is not valid has no words. ``byte_map`` (uint8,
    256) must map every byte to a space or to a byte that is not ASCII whitespace. Returns
    ``ids`` (int32, one per word, in order), ``row_lengths`` (int64, n), the dictionary as
    ``dict_offsets`` (int32) and ``dict_data`` (uint8), and whether any word holds a byte
    that is not ASCII or an apostrophe (those may need the exact regex). With ``whole``, each
    valid string is one word as it is (not split): dictionary-encoding an array of words.

    Words are found a chunk at a time (:func:`_scan`), then looked up one after another:
    the lookups, free of the scan's byte loop, overlap their cache misses (the first
    version, which looked each word up inside the scan, took 3x as long). A slot of the
    table holds a word's hash, its first 8 bytes and its id + 1 (0: empty) beside its
    length, so a word of up to 8 bytes is confirmed in its slot (one cache miss; an index
    of 8-byte slots pointing to the words' records measured 1.2x
    slower on a 0.77 M-word dictionary)."""
    n_rows = offsets.shape[0] - 1
    row_lengths = np.zeros(n_rows, dtype=np.int64)
    ids = np.empty(max(16, data.shape[0] // 6), dtype=np.int32)
    dict_offsets = np.zeros(1024, dtype=np.int32)
    dict_data = np.empty(8192, dtype=np.uint8)
    table = np.zeros((_FIRST_SLOTS, 3), dtype=np.uint64)
    starts = np.empty(_CHUNK_WORDS, dtype=np.int64)
    lengths = np.empty(_CHUNK_WORDS, dtype=np.int64)
    hashes = np.empty(_CHUNK_WORDS, dtype=np.uint64)
    prefixes = np.empty(_CHUNK_WORDS, dtype=np.uint64)
    n_words = 0
    n_tokens = 0
    special = False
    r = 0
    p = offsets[0] if n_rows else 0
    low = np.uint64(0xFFFFFFFF)
    while r < n_rows:
        if whole:
            r, p, found, chunk_special = _scan_whole(offsets, data, valid, byte_map, r,
                                                     row_lengths, starts, lengths, hashes,
                                                     prefixes)
        else:
            r, p, found, chunk_special = _scan(offsets, data, valid, byte_map, r, p,
                                               row_lengths, starts, lengths, hashes, prefixes)
        special = special or chunk_special
        if n_tokens + found > ids.shape[0]:
            ids = _grow(ids, n_tokens, n_tokens + found)
        for j in range(found):
            h = hashes[j]
            n = lengths[j]
            lo = starts[j]
            mask = table.shape[0] - 1
            s = np.int64(h & np.uint64(mask))
            while True:
                entry = table[s, _ENTRY]
                if entry == 0:  # a new word: the next id, its bytes appended
                    end = dict_offsets[n_words] + n
                    if n_words + 1 == dict_offsets.shape[0]:
                        dict_offsets = _grow(dict_offsets, n_words + 1, n_words + 2)
                    if end > dict_data.shape[0]:
                        dict_data = _grow(dict_data, dict_offsets[n_words], end)
                    w = dict_offsets[n_words]
                    for k in range(n):
                        dict_data[w + k] = byte_map[data[lo + k]]
                    dict_offsets[n_words + 1] = end
                    i = n_words
                    table[s, _HASH] = h
                    table[s, _PREFIX] = prefixes[j]
                    table[s, _ENTRY] = (np.uint64(i + 1) << np.uint64(32)) | np.uint64(n)
                    n_words += 1
                    if 2 * n_words > table.shape[0]:  # keep the load under a half
                        table = _rehash(table, 2 * table.shape[0])
                    break
                if (table[s, _HASH] == h and table[s, _PREFIX] == prefixes[j]
                        and np.int64(entry & low) == n):
                    i = np.int64(entry >> np.uint64(32)) - 1
                    if n <= 8 or _rest_matches(data, lo, n, byte_map, dict_data,
                                               dict_offsets[i]):
                        break
                s = (s + 1) & mask
            ids[n_tokens] = i
            n_tokens += 1
    return (ids[:n_tokens].copy(), row_lengths, dict_offsets[:n_words + 1].copy(),
            dict_data[:dict_offsets[n_words]].copy(), special)
