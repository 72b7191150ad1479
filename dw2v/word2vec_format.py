"""The word2vec file formats: text (also fastText's ``.vec``) and binary, read and written.

Text: a header line ``COUNT DIM``, then one line per word, ``word v1 ... vDIM``. Binary: the same
header, then per word ``word``, a space and DIM little-endian float32s; the C tool writes a
newline after each vector, gensim does not, and both readers skip it, so we read both and write
the C tool's form. Text floats are written in their shortest round-trip form (Arrow's cast), so
a reader that parses them as float32 gets our vectors bit for bit.

Reading trusts nothing: the header's claim is checked against the file's size before anything
is allocated (a header claiming 10^12 words is refused, not attempted), and a short body, a
value that is not a number or a line with the wrong number of values is an
:class:`~dw2v.errors.InputError` naming the file and the line (or record).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dw2v.config import MAX_WORD_BYTES
from dw2v.errors import InputError

#: Words per block when formatting text lines.
_TEXT_BLOCK = 16_384


def write_text(handle: io.BufferedIOBase, words: list[str], vectors: np.ndarray) -> None:
    """Write the text format to an open binary file."""
    count, dim = vectors.shape
    handle.write(f"{count} {dim}\n".encode())
    for lo in range(0, count, _TEXT_BLOCK):
        block = np.ascontiguousarray(vectors[lo:lo + _TEXT_BLOCK], dtype=np.float32)
        numbers = pc.cast(pa.array(block.reshape(-1)), pa.string())
        offsets = pa.array(np.arange(0, len(numbers) + 1, dim, dtype=np.int32))
        rows = pc.binary_join(pa.ListArray.from_arrays(offsets, numbers), " ")
        lines = pc.binary_join_element_wise(pa.array(words[lo:lo + _TEXT_BLOCK], pa.string()),
                                            rows, " ")
        handle.write(("\n".join(lines.to_pylist()) + "\n").encode("utf-8"))


def write_binary(handle: io.BufferedIOBase, words: list[str], vectors: np.ndarray) -> None:
    """Write the binary format (the C tool's: a newline after each vector)."""
    count, dim = vectors.shape
    handle.write(f"{count} {dim}\n".encode())
    rows = np.ascontiguousarray(vectors, dtype="<f4")
    for word, row in zip(words, rows):
        handle.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")


def _header(path: Path, line: bytes) -> tuple[int, int]:
    parts = line.split()
    try:
        count, dim = (int(p) for p in parts)
    except ValueError:
        raise InputError(str(path), f"line 1: expected a header 'COUNT DIM', found "
                                    f"{line[:60]!r}") from None
    if count < 0 or dim < 1:
        raise InputError(str(path), f"line 1: invalid header: {count} words of dimension {dim}")
    return count, dim


def _check_claim(path: Path, count: int, dim: int, body_bytes: int, binary: bool,
                 limit: int | None) -> int:
    """The words to read: the header's count (or ``limit``), refused before anything is
    allocated when the file is too small to hold them. A binary record is at least a one-byte
    word, a space and ``4 * dim`` bytes; a text line at least a one-byte word and ``dim``
    one-digit numbers, each after a space, and a newline (but the last)."""
    n = count if limit is None else min(count, limit)
    per_word = 4 * dim + 2 if binary else 2 * dim + 2
    need = n * per_word - (0 if binary else 1) if n else 0
    if need > body_bytes:
        words = f"{n:,} word{'s' if n != 1 else ''}"
        claim = (f"{words} of dimension {dim:,}" if n == count else
                 f"{words} (of {count:,}) of dimension {dim:,}")
        raise InputError(str(path), f"line 1: the header claims {claim}, which need at least "
                                    f"{need:,} bytes after the header, but the file has "
                                    f"{body_bytes:,}: a wrong header or a truncated file")
    return n


def is_binary(path: str | Path) -> bool:
    """Whether a word2vec file is binary: its first record holds bytes that text never has."""
    with open(path, "rb") as handle:
        handle.readline()
        sample = handle.read(4096)
    if not sample:
        return False
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        return True
    first = text.split("\n", 1)[0].split(" ")[1:]
    try:
        [float(x) for x in first if x]
    except ValueError:
        return True
    return False


def read_text(path: str | Path, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """Read the text format (word2vec's or fastText's ``.vec``)."""
    path = Path(path)
    with open(path, "rb") as handle:
        count, dim = _header(path, handle.readline())
        body = os.fstat(handle.fileno()).st_size - handle.tell()
        count = _check_claim(path, count, dim, body, binary=False, limit=limit)
        words: list[str] = []
        vectors = np.empty((count, dim), np.float32)
        for i in range(count):
            line = handle.readline()
            number = i + 2
            if not line:
                raise InputError(str(path), f"line {number}: the file ends after {i} of "
                                            f"{count} words")
            try:
                parts = line.decode("utf-8").rstrip("\n\r ").split(" ")
            except UnicodeDecodeError as exc:
                raise InputError(str(path), f"line {number}: not UTF-8 ({exc.reason})") from None
            if len(parts) != dim + 1:
                raise InputError(str(path), f"line {number}: expected a word and {dim} numbers, "
                                            f"found {len(parts) - 1} numbers")
            try:
                vectors[i] = np.array(parts[1:], dtype=np.float32)
            except ValueError:
                bad = next((p for p in parts[1:] if not _is_number(p)), "")
                raise InputError(str(path), f"line {number}: a value is not a number "
                                            f"({bad[:40]!r})") from None
            words.append(parts[0])
    return words, vectors


def _is_number(text: str) -> bool:
    try:
        np.float32(text)
    except ValueError:
        return False
    return bool(text.strip())


def read_binary(path: str | Path, limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """Read the binary format (with or without a newline after each vector)."""
    path = Path(path)
    data = path.read_bytes()
    end = data.find(b"\n")
    if end < 0:
        raise InputError(str(path), "no header line")
    count, dim = _header(path, data[:end])
    count = _check_claim(path, count, dim, len(data) - end - 1, binary=True, limit=limit)
    width = 4 * dim
    words: list[str] = []
    vectors = np.empty((count, dim), np.float32)
    pos = end + 1
    for i in range(count):
        while pos < len(data) and data[pos] in b"\n\r":
            pos += 1
        space = data.find(b" ", pos)
        if space < 0 or space - pos > MAX_WORD_BYTES:
            raise InputError(str(path), f"record {i + 1}: no word found at byte {pos} "
                                        f"(the file ends after {i} of {count} words?)")
        try:
            words.append(data[pos:space].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InputError(str(path), f"record {i + 1}: the word is not UTF-8 "
                                        f"({exc.reason})") from None
        pos = space + 1
        if pos + width > len(data):
            raise InputError(str(path), f"record {i + 1} ({words[-1]!r}): the file ends "
                                        f"after {len(data) - pos} of its {width} vector bytes")
        vectors[i] = np.frombuffer(data, "<f4", dim, pos)
        pos += width
    return words, vectors


def read(path: str | Path, binary: bool | None = None,
         limit: int | None = None) -> tuple[list[str], np.ndarray]:
    """Read a word2vec file, text or binary (detected when ``binary`` is None)."""
    if binary is None:
        binary = is_binary(path)
    return read_binary(path, limit) if binary else read_text(path, limit)
