"""The Arrow tokenizer against a plain-Python ``re.findall`` reference."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dw2v.config import TokenizerConfig
from dw2v.testing import reference_tokens
from dw2v.tokenize import sentence_offsets, tokenize, tokenize_ids

TRICKY = [
    "Hear, ye deaf; and look, ye blind, that ye may see.",
    "don't 'quoted' a''b rock'n'roll ''' x' 'y",
    "3.14 and 1,000,000 apples_and_pears x-ray e-mail",
    "naïve café ΩMEGA Straße résumé",
    "non\u00a0breaking\u3000space “curly” — dash … ellipsis",
    "日本語のテキスト 中文 Ελληνικά русский العربية",
    "tabs\tand\nnewlines\r\nmixed",
    "",
    "   ...  !!! ",
    None,
]


def _rows(batch, n_rows):  # noqa: ANN001, ANN202
    lengths = batch.row_lengths()
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    tokens = batch.tokens.to_pylist()
    return [tokens[bounds[i]:bounds[i + 1]] for i in range(n_rows)]


def test_default_pattern_matches_python_findall_row_by_row() -> None:
    batch = tokenize(pa.array(TRICKY), TokenizerConfig())
    expected = [reference_tokens(text) for text in TRICKY]
    assert _rows(batch, len(TRICKY)) == expected
    assert batch.n_rows == len(TRICKY)


def test_lowercasing_uses_simple_case_mapping() -> None:
    # Python's str.lower() maps "İ" to "i" + U+0307 (full mapping), which \w then splits;
    # Arrow's utf8_lower maps it to "i", keeping the word whole. This is the one known
    # difference from the plain-Python reference, so the sample above avoids it.
    batch = tokenize(pa.array(["İstanbul"]), TokenizerConfig())
    assert batch.tokens.to_pylist() == ["istanbul"]


def test_apostrophes_only_inside_words() -> None:
    batch = tokenize(pa.array(["don't 'quoted' a''b rock'n'roll"]), TokenizerConfig())
    assert batch.tokens.to_pylist() == ["don't", "quoted", "a", "b", "rock'n'roll"]


def test_no_lowercase_keeps_case() -> None:
    batch = tokenize(pa.array(["The LORD said, Naïve ΩMEGA"]), TokenizerConfig(lowercase=False))
    assert batch.tokens.to_pylist() == ["The", "LORD", "said", "Naïve", "ΩMEGA"]


def test_custom_pattern_uses_findall_semantics() -> None:
    config = TokenizerConfig(pattern=r"[a-z]+(?:-[a-z]+)*")
    batch = tokenize(pa.array(["X-ray and e-mail, 42 times", None, "..."]), config)
    assert batch.tokens.to_pylist() == ["x-ray", "and", "e-mail", "times"]
    assert batch.row_lengths().tolist() == [4, 0, 0]


def test_large_string_and_sliced_input() -> None:
    text = pa.array(["skip me", "Alpha beta", "gamma"], pa.large_string()).slice(1)
    batch = tokenize(text, TokenizerConfig())
    assert batch.tokens.to_pylist() == ["alpha", "beta", "gamma"]
    assert batch.rows.tolist() == [0, 0, 1]


@pytest.mark.parametrize("lengths,limit,expected", [
    ([3, 0, 7, 2], 3, [0, 3, 6, 9, 10, 12]),
    ([10_000], 10_000, [0, 10_000]),
    ([10_001], 10_000, [0, 10_000, 10_001]),
    ([0, 0], 5, [0]),
    ([], 5, [0]),
])
def test_sentence_offsets_cut_long_rows(lengths: list[int], limit: int,
                                        expected: list[int]) -> None:
    assert sentence_offsets(np.array(lengths, dtype=np.int64), limit).tolist() == expected


def test_sentences_never_exceed_the_limit_and_cover_every_token() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 50, size=200)
    offsets = sentence_offsets(lengths, 7)
    assert offsets[-1] == lengths.sum()
    assert (np.diff(offsets) >= 1).all() and (np.diff(offsets) <= 7).all()
    # every row boundary is a sentence boundary
    assert set(np.cumsum(lengths)) <= set(offsets.tolist())


# ------------------------------------------------------------------ the token length limit

def test_tokens_over_the_byte_limit_are_dropped_and_counted() -> None:
    cyrillic = "ж" * 60  # 60 characters, 120 UTF-8 bytes: over the limit
    ascii_60 = "a" * 60
    exactly = "b" * 100
    over = "c" * 101
    text = pa.array([f"{cyrillic} one {ascii_60}", f"{exactly} {over}", over, None, ""])
    batch = tokenize(text, TokenizerConfig())
    assert TokenizerConfig().max_token_bytes == 100
    assert batch.tokens.to_pylist() == ["one", ascii_60, exactly]
    assert batch.long_dropped == 3
    assert batch.row_lengths().tolist() == [2, 1, 0, 0, 0]  # a row of long tokens only: empty


def test_the_limit_is_bytes_not_characters() -> None:
    config = TokenizerConfig(max_token_bytes=10)
    words = ["abcdefghij", "ábcdefghi", "日本語", "日本語の"]  # 10, 10, 9 and 12 bytes
    batch = tokenize(pa.array([" ".join(words)]), config)
    assert batch.tokens.to_pylist() == words[:3]
    assert batch.long_dropped == 1


def test_the_limit_applies_after_lowercasing() -> None:
    # "İ" is 2 bytes and lowercases to the 1-byte "i": the token is measured as it is counted
    config = TokenizerConfig(max_token_bytes=9)
    batch = tokenize(pa.array(["İstanbull"]), config)
    assert batch.tokens.to_pylist() == ["istanbull"] and batch.long_dropped == 0
    batch = tokenize(pa.array(["İstanbull"]), TokenizerConfig(max_token_bytes=9,
                                                               lowercase=False))
    assert batch.tokens.to_pylist() == [] and batch.long_dropped == 1


def test_the_limit_applies_in_every_path() -> None:
    long_word = "x" * 150
    cases = {
        "fast path, ASCII": f"the {long_word} cat",
        "fast path, apostrophe": f"the don't{long_word} cat",
        "fast path, non-ASCII": f"the é{long_word} cat",
    }
    for name, text in cases.items():
        batch = tokenize(pa.array([text]), TokenizerConfig())
        assert batch.tokens.to_pylist() == ["the", "cat"], name
        assert batch.long_dropped == 1, name
    custom = TokenizerConfig(pattern=r"[a-z]+(?:-[a-z]+)*")
    batch = tokenize(pa.array([f"the {long_word}-ray x-ray"]), custom)
    assert batch.tokens.to_pylist() == ["the", "x-ray"] and batch.long_dropped == 1


def test_a_long_run_that_splits_into_short_words_is_kept() -> None:
    # the fast path's whitespace chunk is long, but the regex splits it into short words
    text = "—".join(["naïve"] * 40)  # one 300-byte chunk without ASCII whitespace
    batch = tokenize(pa.array([text]), TokenizerConfig())
    assert batch.tokens.to_pylist() == ["naïve"] * 40 and batch.long_dropped == 0


def test_a_two_megabyte_token_is_dropped() -> None:
    batch = tokenize(pa.array(["y" * 2_000_000 + " the cat", "dog"]), TokenizerConfig())
    assert batch.tokens.to_pylist() == ["the", "cat", "dog"]
    assert batch.long_dropped == 1 and batch.rows.tolist() == [0, 0, 1]


@pytest.mark.parametrize("config", [TokenizerConfig(), TokenizerConfig(lowercase=False),
                                    TokenizerConfig(max_token_bytes=3),
                                    TokenizerConfig(pattern=r"[a-z]+")],
                         ids=["default", "cased", "short-limit", "own-pattern"])
def test_tokenize_ids_gives_the_same_tokens_as_tokenize(config: TokenizerConfig) -> None:
    """Counting and encoding use ``tokenize_ids``, which does the spelling-dependent work once
    per distinct token: its tokens, rows and dropped counts are ``tokenize``'s."""
    texts = ["The cat's hat", None, "", "'''", "Don't 'tis café ''x'' naïve— o'clock",
             "w" * 150 + " a", "ÉCOLE école l'école", "a " * 5, "x" * 60 + "é" + "y" * 60,
             "Ünïcödé ÀB cd", "it's it's it's"] * 3
    for text in (pa.array(texts, pa.string()), pa.array([None, None], pa.string()),
                 pa.array([], pa.string()), pa.array(["plain ascii only"] * 4)):
        expected = tokenize(text, config)
        got = tokenize_ids(text, config)
        assert got.ids.dtype == np.int32
        assert got.dictionary.take(pa.array(got.ids)).to_pylist() == expected.tokens.to_pylist()
        assert got.row_lengths.tolist() == expected.row_lengths().tolist()
        assert got.long_dropped == expected.long_dropped
        assert len(set(got.dictionary.to_pylist())) == len(got.dictionary)  # no spelling twice
