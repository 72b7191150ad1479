"""The split-and-encode kernel against Arrow's ``ascii_split_whitespace`` and
``dictionary_encode``."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dw2v.kernels.split_words import split_encode
from dw2v.tokenize import _IDENTITY, _SPLIT_TABLES, _map_bytes, _split_encode, encode_words
from dw2v.word_index import string_buffers


def _arrow_reference(text: pa.Array, lowercase: bool) -> tuple[list, list, list, bool]:
    """The Arrow passes the kernel replaces: (dictionary, ids, tokens per row, special)."""
    if lowercase:
        text = pc.utf8_lower(text)
    mapped, special = _map_bytes(text, _SPLIT_TABLES[False] if not lowercase else
                                 _SPLIT_TABLES[True])
    lists = pc.ascii_split_whitespace(mapped)
    flat = lists.flatten()
    keep = pc.greater(pc.binary_length(flat), 0)  # Arrow splits "" into [""]
    rows = np.asarray(pc.list_parent_indices(lists))[keep.to_numpy(zero_copy_only=False)]
    encoded = pc.dictionary_encode(flat.filter(keep))
    return (encoded.dictionary.to_pylist(), encoded.indices.to_pylist(),
            np.bincount(rows, minlength=len(text)).tolist(), special)


def _check(text: pa.Array, lowercase: bool) -> None:
    dictionary, ids, row_lengths, special = _split_encode(text, lowercase)
    want_dictionary, want_ids, want_lengths, want_special = _arrow_reference(text, lowercase)
    assert dictionary.to_pylist() == want_dictionary
    assert ids.dtype == np.int32 and ids.tolist() == want_ids
    assert row_lengths.dtype == np.int64 and row_lengths.tolist() == want_lengths
    if len(ids):
        assert special == want_special


PIECES = list("abcXYZ '\t\n\r.,;-é€Ωİ日x1") + ["don't", "  ", "\u00a0", "“", "Ab" * 6,
                                              "abcdefghX", "abcdefghY", "ABCDEFGHX"]


@pytest.mark.parametrize("lowercase", [True, False], ids=["lowercase", "cased"])
def test_random_text_matches_arrow(lowercase: bool) -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randrange(0, 25)
        rows = [None if rng.random() < 0.1 else
                "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 30)))
                for _ in range(n)]
        text = pa.array(rows, pa.string())
        _check(text, lowercase)
        if n > 4:
            _check(text.slice(2, n - 3), lowercase)  # offsets that do not start at 0


def test_words_sharing_their_first_8_bytes_stay_apart() -> None:
    text = pa.array(["abcdefghX abcdefghY abcdefghX abcdefgh abcdefghXY abcdefgh"])
    dictionary, ids, _, _ = _split_encode(text, True)
    assert dictionary.to_pylist() == ["abcdefghx", "abcdefghy", "abcdefgh", "abcdefghxy"]
    assert ids.tolist() == [0, 1, 0, 2, 3, 2]


def test_many_words_grow_the_table_and_cross_chunks() -> None:
    # 60,000 distinct words in one row: the table grows past its first 4,096 slots and the
    # row's words span several scan chunks (16,384 words each); then the same words again
    words = [f"w{i}" for i in range(60_000)]
    text = pa.array([" ".join(words), "", " ".join(reversed(words)), None, "w5 w7"])
    _check(text, True)
    dictionary, ids, row_lengths, _ = _split_encode(text, True)
    assert len(dictionary) == 60_000 and row_lengths.tolist() == [60_000, 0, 60_000, 0, 2]
    assert ids[60_000:120_000].tolist() == list(range(59_999, -1, -1))


def test_empty_and_all_null_inputs() -> None:
    for text in (pa.array([], pa.string()), pa.array([None, None], pa.string()),
                 pa.array(["", "   ", "...!!"])):
        dictionary, ids, row_lengths, special = _split_encode(text, True)
        assert len(dictionary) == 0 and len(ids) == 0 and not special
        assert row_lengths.tolist() == [0] * len(text)


def test_capitals_above_ascii_are_lowercased() -> None:
    # ASCII capitals are folded by the byte table; a batch with others goes through utf8_lower
    dictionary, ids, _, _ = _split_encode(pa.array(["THE Cat ΩMEGA ωmega the"]), True)
    assert dictionary.to_pylist() == ["the", "cat", "ωmega"] and ids.tolist() == [0, 1, 2, 2, 0]


def test_whole_strings_are_one_word_each() -> None:
    """``whole``: dictionary-encode an array of words, spaces and all (count tables' merge)."""
    words = pa.array(["b", "a b", "", "b", "a b", "naïve", "", "abcdefghij", "abcdefghik"])
    dictionary, ids = encode_words(words)
    encoded = pc.dictionary_encode(words)
    assert dictionary.to_pylist() == encoded.dictionary.to_pylist()
    assert ids.tolist() == encoded.indices.to_pylist()
    offsets, data = string_buffers(words)
    _, row_lengths, _, _, _ = split_encode(offsets, data, np.zeros(0, np.bool_), _IDENTITY, True)
    assert row_lengths.tolist() == [1] * len(words)


def test_the_bytes_after_the_first_8_are_compared() -> None:
    # a shared hash is too rare to provoke, so the comparison that guards it is tested alone
    from dw2v.kernels.split_words import _rest_matches

    data = np.frombuffer(b"ABCDEFGHXY", np.uint8)
    lower = _SPLIT_TABLES[True]
    assert _rest_matches(data, 0, 10, lower, np.frombuffer(b"abcdefghxy", np.uint8), 0)
    assert not _rest_matches(data, 0, 10, lower, np.frombuffer(b"abcdefghxz", np.uint8), 0)
    assert _rest_matches(data, 0, 10, lower, np.frombuffer(b"..abcdefghxy", np.uint8), 2)
