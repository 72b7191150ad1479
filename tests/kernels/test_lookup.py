"""The string hash table (``kernels.lookup`` through ``word_index``) against Arrow's exact
``index_in``: known and unknown strings, non-ASCII and empty ones, sliced arrays, and strings
that share a hash."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dw2v.kernels.lookup import build_table, confirm, probe_exact, probe_table
from dw2v.word_index import WordIndex, index_of, string_buffers


def _reference(vocab: pa.Array, queries: pa.Array) -> np.ndarray:
    return pc.index_in(queries, value_set=vocab).fill_null(-1).to_numpy().astype(np.int32)


def _words(rng: np.random.Generator, n: int) -> list[str]:
    letters = list("abcdefghij") + ["é", "ß", "の", "'"]
    return ["".join(rng.choice(letters, size=rng.integers(1, 12))) for _ in range(n)]


def test_ids_equal_arrow_index_in() -> None:
    rng = np.random.default_rng(0)
    vocab = pa.array(list(dict.fromkeys(_words(rng, 5000))))
    queries = pa.array(_words(rng, 20000) + vocab.to_pylist()[::7] + ["", "zzz"])
    ids = WordIndex(vocab).ids(queries)
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, _reference(vocab, queries))
    assert (ids >= 0).sum() > 1000 and (ids == -1).sum() > 1000  # both kinds tested


def test_sliced_arrays_and_a_tiny_vocabulary() -> None:
    vocab = pa.array(["x", "the", "cat", "", "a"]).slice(1)  # ["the", "cat", "", "a"]
    queries = pa.array(["q", "cat", "", "the", "dog", "a", "cat"]).slice(1)
    np.testing.assert_array_equal(WordIndex(vocab).ids(queries), [1, 2, 0, -1, 3, 1])
    assert WordIndex(vocab).ids(pa.array([], pa.string())).tolist() == []


def test_strings_sharing_a_hash_are_told_apart() -> None:
    """The kernels with every hash equal (the worst case of collisions): the bytes decide."""
    vocab = pa.array(["apple", "pear", "fig", "plum"])
    queries = pa.array(["fig", "kiwi", "apple", "plum", "pea", "pear"])
    offsets, data = string_buffers(vocab)
    q_offsets, q_data = string_buffers(queries)
    keys = np.zeros(16, np.uint64)
    slots = np.full(16, -1, np.int32)
    build_table(np.zeros(4, np.uint64), keys, slots)
    hashes = np.zeros(len(queries), np.uint64)
    found = np.empty(len(queries), np.int32)
    probe_table(keys, slots, hashes, found)
    assert found.tolist() == [0] * 6  # every query first meets "apple"
    clashes = confirm(offsets, data, q_offsets, q_data, found)
    assert clashes == 5
    probe_exact(keys, slots, offsets, data, q_offsets, q_data, hashes,
                np.flatnonzero(found == -2), found)
    np.testing.assert_array_equal(found, _reference(vocab, queries))


def test_the_index_is_built_once_per_vocabulary_array() -> None:
    vocab = pa.array(["a", "b"])
    assert index_of(vocab) is index_of(vocab)
    other = pa.array(["a", "b"])
    assert index_of(other) is not index_of(vocab)
    assert index_of(other).ids(pa.array(["b"])).tolist() == [1]
