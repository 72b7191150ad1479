"""Text to tokens with ``pyarrow.compute``: lowercasing, a word regex, sentence cutting.

Tokens are every non-overlapping match of the word pattern (``re.findall`` semantics), found
without a Python loop per token. RE2 is slow at extracting submatches, so the default pattern
takes a fast path: ASCII bytes that can never be part of a word become spaces through a lookup
table, the text is split on ASCII whitespace, and only the few tokens that hold an apostrophe or
a non-ASCII byte go through the exact regex. Counting and encoding (:func:`tokenize_ids`) do the
table, the split and the dictionary encoding in one Numba pass (``dw2v.kernels.split_words``,
the same result as Arrow's three passes, in about a third of their time).

Tokens longer than ``TokenizerConfig.max_token_bytes`` (default 100; ``--max-token-bytes``)
UTF-8 bytes, measured after lowercasing, are dropped and counted (``TokenBatch.long_dropped``,
then ``long_tokens_dropped`` in the vocabulary's stats and ``vocab_report.json``), in every path.
The limit is in bytes, not characters (a 60-letter Cyrillic word is 120 bytes), because bytes
are what other tools bound: word2vec C reads words into buffers of ``MAX_STRING`` = 100 bytes
(its ``distance`` tool cuts vocabulary words at 50), and our own binary reader refuses a word
over 10,000 bytes; a model whose words are within the limit reads back everywhere. Real words
are far shorter (the longest English ones are about 45 letters); what exceeds it is hashes,
encoded blobs or glued text, and a 50 MB "word" would otherwise enter the vocabulary and every
export. Dropped, not cut: cutting would merge unrelated strings into one fake word. Text
written without spaces (Chinese, Japanese, Thai) is one token per run of letters, so it must be
segmented first, as for word2vec C; its runs over 33 characters are dropped. Counting and
encoding both tokenize with this function, so the two passes always drop the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dw2v.config import TokenizerConfig
from dw2v.word_index import string_buffers

_SEP = "\x00"  # a separator no reasonable word pattern matches


@dataclass(frozen=True)
class TokenBatch:
    """Tokens of one batch of rows, flattened, with the row each token came from.

    ``tokens``: string array of length T, no nulls, no empty strings.
    ``rows``: int64 array of length T, non-decreasing row indices into the batch.
    ``n_rows``: rows in the batch, nulls and empty rows included.
    ``long_dropped``: tokens dropped for being longer than ``max_token_bytes`` (not in
    ``tokens``).
    """

    tokens: pa.StringArray
    rows: np.ndarray
    n_rows: int
    long_dropped: int = 0

    def row_lengths(self) -> np.ndarray:
        """Tokens per row (int64, length ``n_rows``)."""
        return np.bincount(self.rows, minlength=self.n_rows).astype(np.int64)


def _ascii_keep_table(lowercase: bool) -> np.ndarray:
    """Byte map: ASCII bytes outside [A-Za-z0-9'] become a space; other bytes stay."""
    table = np.arange(256, dtype=np.uint8)
    keep = set(b"abcdefghijklmnopqrstuvwxyz0123456789'")
    if not lowercase:
        keep |= set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    for byte in range(128):
        if byte not in keep:
            table[byte] = ord(" ")
    return table


_KEEP_TABLES = {flag: _ascii_keep_table(flag) for flag in (True, False)}


def _folding_table() -> np.ndarray:
    """:func:`_ascii_keep_table` for lowercased text that also lowercases ASCII capitals, so
    text with no byte above ASCII needs no ``utf8_lower`` pass (its lowercase is the same)."""
    table = _ascii_keep_table(True)
    for byte in range(ord("A"), ord("Z") + 1):
        table[byte] = byte + 32
    return table


_SPLIT_TABLES = {True: _folding_table(), False: _KEEP_TABLES[False]}


def _map_bytes(arr: pa.StringArray, table: np.ndarray) -> tuple[pa.StringArray, bool]:
    """Apply a byte-to-byte table to the data buffer of a string array (offsets unchanged).

    Also says whether any byte is non-ASCII or an apostrophe, i.e. whether some token may need
    the exact regex (pure-ASCII text without apostrophes never does).
    """
    validity, offsets, data = arr.buffers()
    if data is None or data.size == 0:
        return arr, False
    mapped = table[np.frombuffer(data, dtype=np.uint8)]
    special = bool((mapped >= 0x80).any() or (mapped == ord("'")).any())
    mapped_arr = pa.StringArray.from_buffers(
        len(arr), offsets, pa.py_buffer(mapped), validity, arr.null_count, arr.offset)
    return mapped_arr, special


def _findall(arr: pa.Array, pattern: str) -> pa.ListArray:
    """Every non-overlapping match of ``pattern`` in each string, as a list array.

    Each match (and the gap before it) is rewritten to the match plus a separator, the tail
    after the last match to nothing; splitting on the separator then yields the matches.
    """
    rewritten = pc.replace_substring_regex(
        arr, pattern=f"(?s:.*?)({pattern}|$)", replacement="\\1" + _SEP
    )
    return pc.split_pattern(rewritten, pattern=_SEP)


def _splice(
    tokens: pa.StringArray, rows: np.ndarray, special: np.ndarray, pieces: pa.ListArray
) -> tuple[pa.StringArray, np.ndarray]:
    """Replace ``tokens[special[j]]`` by the list ``pieces[j]``, keeping order and row indices."""
    n = len(tokens)
    piece_offsets = np.asarray(pieces.offsets, dtype=np.int64)
    piece_counts = np.diff(piece_offsets)
    reps = np.ones(n, dtype=np.int64)
    reps[special] = piece_counts
    owner = np.repeat(np.arange(n, dtype=np.int64), reps)  # output position -> input token
    starts = np.cumsum(reps) - reps
    n_pieces = int(piece_offsets[-1] - piece_offsets[0])
    index = owner.copy()
    piece_pos = np.repeat(starts[special] - (piece_offsets[:-1] - piece_offsets[0]), piece_counts)
    index[piece_pos + np.arange(n_pieces)] = n + np.arange(n_pieces)
    values = pa.concat_arrays([tokens, pieces.flatten()]).take(pa.array(index))
    return values, rows[owner]


def tokenize(text: pa.Array, config: TokenizerConfig) -> TokenBatch:
    """Tokenize a string array (nulls allowed) into a :class:`TokenBatch`; tokens longer than
    ``config.max_token_bytes`` UTF-8 bytes are dropped and counted."""
    if pa.types.is_list(text.type) or pa.types.is_large_list(text.type) or (
            pa.types.is_list_view(text.type)):
        return _token_lists(text, config)
    if not pa.types.is_string(text.type):
        text = text.cast(pa.string())
    if config.lowercase:
        text = pc.utf8_lower(text)
    maybe_special = False
    if config.is_default_pattern:
        mapped, maybe_special = _map_bytes(text, _KEEP_TABLES[config.lowercase])
        lists = pc.ascii_split_whitespace(mapped)
    else:
        lists = _findall(text, config.pattern)
    tokens = lists.flatten()
    rows = np.asarray(pc.list_parent_indices(lists), dtype=np.int64)
    if maybe_special and len(tokens):
        odd = pc.or_(pc.invert(pc.string_is_ascii(tokens)), pc.match_substring(tokens, "'"))
        special = np.flatnonzero(odd.to_numpy(zero_copy_only=False))
        if len(special):
            pieces = _findall(tokens.take(pa.array(special)), config.pattern)
            tokens, rows = _splice(tokens, rows, special, pieces)
    return _kept(tokens, rows, len(text), config)


@dataclass(frozen=True)
class IdBatch:
    """Tokens of one batch of rows as ids into the batch's own dictionary: what counting and
    encoding need, without the token strings in order.

    ``dictionary``: string array, each spelling once; entries no token refers to may be
    present (they count 0).
    ``ids``: int32 array of length T, each token's entry, in order.
    ``row_lengths``: int64 array of length ``n_rows``, tokens per row (summing to T).
    ``long_dropped``: as in :class:`TokenBatch`.
    """

    dictionary: pa.Array
    ids: np.ndarray
    row_lengths: np.ndarray
    long_dropped: int = 0


def tokenize_ids(text: pa.Array, config: TokenizerConfig) -> IdBatch:
    """:func:`tokenize`'s tokens, dictionary-encoded: the same tokens in the same order
    (``dictionary.take(ids)`` equals ``tokenize(text, config).tokens``).

    For the default pattern the work that depends on a token's spelling (the exact regex for
    tokens with an apostrophe or a non-ASCII byte, the length limit) is done once per distinct
    token, on the dictionary, and carried to the tokens with integer arrays; tokens per row
    come from the split's offsets. Other inputs go through :func:`tokenize`."""
    if _is_list_type(text.type) or not config.is_default_pattern:
        return _encoded(tokenize(text, config))
    if not pa.types.is_string(text.type):
        text = text.cast(pa.string())
    dictionary, ids, row_lengths, maybe_special = _split_encode(text, config.lowercase)
    n = len(dictionary)
    special = np.zeros(0, np.int64)
    if maybe_special and n:
        odd = pc.or_(pc.invert(pc.string_is_ascii(dictionary)),
                     pc.match_substring(dictionary, "'"))
        special = np.flatnonzero(odd.to_numpy(zero_copy_only=False))
    if not len(special):  # each token stays itself or goes (empty, or over the limit)
        sizes = pc.binary_length(dictionary).to_numpy(zero_copy_only=False)
        too_long = sizes > config.max_token_bytes
        keep = (sizes > 0) & ~too_long
        if keep.all():
            return IdBatch(dictionary, ids, row_lengths)
        kept = keep[ids]
        long_dropped = int(too_long[ids].sum()) if too_long.any() else 0
        return IdBatch(dictionary, ids[kept], lengths_after(row_lengths, kept), long_dropped)
    # every entry becomes a run of entries (itself; or, when special, its regex pieces
    # appended to the dictionary), without those empty or over the byte limit
    counts = np.ones(n, np.int64)
    pieces = _findall(dictionary.take(pa.array(special)), config.pattern)
    piece_counts = np.diff(np.asarray(pieces.offsets)).astype(np.int64)
    counts[special] = piece_counts
    flat = pieces.flatten()
    dictionary = pa.concat_arrays([dictionary, flat.cast(dictionary.type)])
    starts = np.cumsum(counts) - counts
    runs = np.repeat(np.arange(n, dtype=np.int64), counts)  # placeholder entries
    runs[_positions(starts[special], piece_counts)] = n + np.arange(len(flat))
    # a piece may spell an entry already there ("don't," and "don't"): one entry per spelling
    unique = pc.dictionary_encode(dictionary)
    dictionary = unique.dictionary
    runs = unique.indices.to_numpy()[runs]
    sizes = pc.binary_length(dictionary).to_numpy(zero_copy_only=False)
    run_sizes = sizes[runs]
    too_long = run_sizes > config.max_token_bytes
    keep = (run_sizes > 0) & ~too_long
    long_dropped = 0
    if too_long.any():
        long_dropped = int(_run_sums(too_long, starts, counts)[ids].sum())
    kept_counts = _run_sums(keep, starts, counts)
    table = runs[keep]  # the kept entries of every run, run after run
    table_starts = np.cumsum(kept_counts) - kept_counts
    token_counts = kept_counts[ids]
    if kept_counts.max(initial=0) <= 1:  # each token stays one token or goes: no expansion
        out = table[table_starts[ids[token_counts == 1]]].astype(np.int32)
    else:
        out = table[_positions(table_starts[ids], token_counts)].astype(np.int32)
    return IdBatch(dictionary, out, lengths_after(row_lengths, token_counts), long_dropped)


def _string_buffers(text: pa.StringArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A string array's (int64 offsets, uint8 data, validity: bool or length 0 if no null)."""
    offsets, data = string_buffers(text, nulls=True)
    valid = (text.is_valid().to_numpy(zero_copy_only=False) if text.null_count
             else np.zeros(0, np.bool_))
    return offsets, data, valid


def _dictionary(dict_offsets: np.ndarray, dict_data: np.ndarray) -> pa.StringArray:
    return pa.StringArray.from_buffers(len(dict_offsets) - 1, pa.py_buffer(dict_offsets),
                                       pa.py_buffer(dict_data))


_IDENTITY = np.arange(256, dtype=np.uint8)


def encode_words(words: pa.StringArray) -> tuple[pa.StringArray, np.ndarray]:
    """Dictionary-encode an array of words without nulls: (each spelling once, in order of
    first appearance; int32 ids), as ``pc.dictionary_encode`` but faster on millions."""
    from dw2v.kernels import split_words  # Numba: not at import (``dw2v.load`` stays light)

    offsets, data, valid = _string_buffers(words)
    ids, _, dict_offsets, dict_data, _ = split_words.split_encode(offsets, data, valid,
                                                                  _IDENTITY, True)
    return _dictionary(dict_offsets, dict_data), ids


def _split_encode(text: pa.StringArray, lowercase: bool
                  ) -> tuple[pa.StringArray, np.ndarray, np.ndarray, bool]:
    """The default pattern's fast path in one pass (:func:`split_words.split_encode`):
    (dictionary, int32 ids, int64 tokens per row, whether a word may need the exact regex).
    The same result as lowercasing, :func:`_map_bytes`, ``ascii_split_whitespace`` and
    ``dictionary_encode`` in turn, in about a third of their time."""
    if lowercase and len(text) and not pc.all(pc.string_is_ascii(text)).as_py():
        text = pc.utf8_lower(text)  # capitals above ASCII: the table folds only ASCII's
    from dw2v.kernels import split_words  # Numba: not at import (``dw2v.load`` stays light)

    offsets, data, valid = _string_buffers(text)
    ids, row_lengths, dict_offsets, dict_data, special = split_words.split_encode(
        offsets, data, valid, _SPLIT_TABLES[lowercase])
    return _dictionary(dict_offsets, dict_data), ids, row_lengths, bool(special)


def lengths_after(row_lengths: np.ndarray, per_token: np.ndarray) -> np.ndarray:
    """Tokens per row after token ``i`` became ``per_token[i]`` tokens (0: dropped)."""
    cumulative = np.zeros(len(per_token) + 1, np.int64)
    np.cumsum(per_token, out=cumulative[1:])
    ends = np.cumsum(row_lengths)
    return cumulative[ends] - cumulative[ends - row_lengths]


def _run_sums(flags: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """How many of ``flags[s:s + c]`` are set, for each start and count (int64)."""
    cumulative = np.zeros(len(flags) + 1, np.int64)
    np.cumsum(flags, out=cumulative[1:])
    return cumulative[starts + counts] - cumulative[starts]


def _positions(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concat(range(s, s + c))`` for each start and count (int64)."""
    total = int(counts.sum())
    if not total:
        return np.zeros(0, np.int64)
    run_of = np.repeat(np.arange(len(counts)), counts)
    return starts[run_of] + (np.arange(total) - (np.cumsum(counts) - counts)[run_of])


def _is_list_type(dtype: pa.DataType) -> bool:
    return pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_list_view(
        dtype)


def _encoded(batch: TokenBatch) -> IdBatch:
    encoded = pc.dictionary_encode(batch.tokens)
    return IdBatch(encoded.dictionary, encoded.indices.to_numpy().astype(np.int32, copy=False),
                   batch.row_lengths(), batch.long_dropped)


def _token_lists(lists: pa.Array, config: TokenizerConfig) -> TokenBatch:
    """Pre-tokenized rows (lists of strings): the tokens as they are (lowercased when the
    tokenizer lowercases; no pattern), null and empty tokens dropped, long ones counted."""
    if pa.types.is_list_view(lists.type):
        lists = lists.cast(pa.large_list(lists.type.value_type))
    tokens = lists.flatten()
    rows = np.asarray(pc.list_parent_indices(lists), dtype=np.int64)
    if not pa.types.is_string(tokens.type):
        tokens = tokens.cast(pa.string())
    if tokens.null_count:
        valid = tokens.is_valid()
        rows = rows[valid.to_numpy(zero_copy_only=False)]
        tokens = tokens.filter(valid)
    if config.lowercase:
        tokens = pc.utf8_lower(tokens)
    return _kept(tokens, rows, len(lists), config)


def _kept(tokens: pa.Array, rows: np.ndarray, n_rows: int,
          config: TokenizerConfig) -> TokenBatch:
    """The batch of ``tokens`` without empty ones and those over ``max_token_bytes``."""
    lengths = pc.binary_length(tokens)  # UTF-8 bytes
    too_long = pc.greater(lengths, config.max_token_bytes)
    long_dropped = int(pc.sum(too_long).as_py() or 0)
    keep = pc.and_(pc.greater(lengths, 0), pc.invert(too_long))
    keep_np = keep.to_numpy(zero_copy_only=False)
    if not keep_np.all():
        tokens = tokens.filter(keep)
        rows = rows[keep_np]
    return TokenBatch(tokens=tokens, rows=rows, n_rows=n_rows, long_dropped=long_dropped)


def sentence_offsets(row_lengths: np.ndarray, max_length: int) -> np.ndarray:
    """Offsets of sentences over the concatenated tokens of the rows (int64, length S + 1).

    A sentence never crosses a row (document) boundary; rows longer than ``max_length`` are cut
    into pieces of at most ``max_length``; rows without tokens yield no sentence.
    """
    lengths = np.asarray(row_lengths, dtype=np.int64)
    row_starts = np.cumsum(lengths) - lengths
    per_row = -(-lengths // max_length)  # ceil division; 0 for empty rows
    row_of = np.repeat(np.arange(len(lengths)), per_row)
    piece = np.arange(len(row_of), dtype=np.int64) - np.repeat(np.cumsum(per_row) - per_row,
                                                               per_row)
    starts = row_starts[row_of] + piece * max_length
    return np.append(starts, lengths.sum()).astype(np.int64)
