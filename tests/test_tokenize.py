"""The Arrow tokenizer against a plain-Python ``re.findall`` reference."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dw2v.config import TokenizerConfig
from dw2v.testing import reference_tokens
from dw2v.tokenize import sentence_offsets, tokenize

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
