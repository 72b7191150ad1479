"""Generate a large synthetic Zipfian text corpus as Parquet shards (for benchmarks).

Every document is a row ``(doc_id: int64, text: string)``. Words are pseudo-words made of
two-letter consonant+vowel syllables: the word of rank ``r`` (1 = most frequent) spells ``r`` in
bijective base ``len(SYLLABLES)``, one syllable per digit, so every rank has its own word, the
decomposition into syllables is unique, and frequent words are short. Words hold lowercase ASCII
letters only, so dw2v's and gensim's tokenizers both see each word as exactly one token.

Token ranks follow a Zipf law over the finite vocabulary, ``P(r) ~ r ** -zipf_s``, sampled by
inverse CDF (``np.searchsorted``). Document lengths are lognormal (median about 60% of the mean,
long tail, clipped to [1, 5000] tokens). About 0.1% of rows are null and 0.1% are empty strings,
so that the ingest paths for both are exercised. Every non-empty document ends with ".".

Planted pairs (``plant=K``): K pairs of mid-frequency words (a, b) where b only ever appears right
after a, in the same document, for quality checks of trained vectors. They are listed in
``corpus.json`` next to the shards.

Text is built with Arrow compute, without a Python loop per token, in chunks of 65,536 documents
(one Parquet row group each), so memory stays bounded whatever the corpus size::

    python benchmarks/make_corpus.py OUT_DIR --gigabytes 1.0 --shards 16
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
#: 70 two-letter syllables; a word is 1..k of them.
SYLLABLES = [c + v for c in CONSONANTS for v in VOWELS]

ROWS_PER_CHUNK = 65_536  # one Parquet row group per chunk
NULL_FRACTION = 0.001
EMPTY_FRACTION = 0.001
DOC_SIGMA = 1.0  # lognormal shape of document lengths
MAX_DOC_TOKENS = 5_000
SCHEMA = pa.schema([("doc_id", pa.int64()), ("text", pa.string())])
MANIFEST = "corpus.json"


def make_words(vocab_size: int) -> pa.StringArray:
    """The ``vocab_size`` pseudo-words, most frequent first: ``words[r - 1]`` has rank ``r``.

    Rank ``r`` is written in bijective base ``B = len(SYLLABLES)`` (digits 1..B, so there is no
    leading-zero ambiguity), digit ``d`` spelled ``SYLLABLES[d - 1]``: ranks 1..B get one
    syllable, the next B**2 two, and so on. Built with NumPy, one length class at a time.
    """
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be at least 1, got {vocab_size}")
    base = len(SYLLABLES)
    table = np.frombuffer("".join(SYLLABLES).encode("ascii"), dtype=np.uint8).reshape(base, 2)
    pieces: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    first, n_syllables = 0, 1  # first: 0-based index of the first word of this length class
    while first < vocab_size:
        count = min(base ** n_syllables, vocab_size - first)
        index = np.arange(count, dtype=np.int64)  # position within the length class
        digits = np.empty((count, n_syllables), dtype=np.int64)
        for place in range(n_syllables - 1, -1, -1):
            digits[:, place] = index % base
            index //= base
        pieces.append(table[digits].reshape(-1))
        lengths.append(np.full(count, 2 * n_syllables, dtype=np.int32))
        first += count
        n_syllables += 1
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int32)
    return pa.StringArray.from_buffers(vocab_size, pa.py_buffer(offsets),
                                       pa.py_buffer(np.concatenate(pieces)))


def zipf_cdf(vocab_size: int, zipf_s: float) -> np.ndarray:
    """Cumulative distribution over ranks 1..vocab_size with weights ``r ** -zipf_s``."""
    weights = np.arange(1, vocab_size + 1, dtype=np.float64) ** -zipf_s
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return cdf


def choose_planted_pairs(vocab_size: int, plant: int, seed: int) -> np.ndarray:
    """``plant`` pairs of distinct 0-based word ids (shape (plant, 2)), from mid frequencies.

    Ids come from ranks 200..20,000 (or what the vocabulary allows): frequent enough to be kept
    and trained, rare enough not to disturb the Zipf shape much.
    """
    if plant == 0:
        return np.empty((0, 2), dtype=np.int64)
    low, high = min(200, vocab_size // 4), min(20_000, vocab_size)
    if high - low < 2 * plant:
        raise ValueError(f"plant={plant} pairs need a larger vocabulary than {vocab_size}")
    rng = np.random.default_rng([seed, 0x504C414E54])  # "PLANT"
    return rng.choice(np.arange(low, high), size=(plant, 2), replace=False).astype(np.int64)


def _plant(ids: np.ndarray, lengths: np.ndarray, pairs: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Rewrite every ``b`` of a pair as ``a`` and insert ``b`` right after every ``a``.

    ``ids`` holds the tokens of consecutive documents of ``lengths`` tokens each; the
    insertion grows the documents, never crossing a document boundary.
    """
    if len(pairs) == 0:
        return ids, lengths
    top = max(int(ids.max(initial=0)), int(pairs.max())) + 1
    to_a = np.arange(top, dtype=np.int64)
    to_a[pairs[:, 1]] = pairs[:, 0]
    ids = to_a[ids]
    partner = np.full(top, -1, dtype=np.int64)
    partner[pairs[:, 0]] = pairs[:, 1]
    follow = partner[ids]
    is_a = follow >= 0
    out = np.repeat(ids, 1 + is_a)
    # the copy made by np.repeat sits right after its original; turn it into the partner
    positions = np.flatnonzero(is_a) + np.arange(int(is_a.sum())) + 1
    out[positions] = follow[is_a]
    doc_of = np.repeat(np.arange(len(lengths)), lengths)
    lengths = lengths + np.bincount(doc_of[is_a], minlength=len(lengths))
    return out, lengths


def _doc_lengths(rng: np.random.Generator, n: int, mean_doc_tokens: float) -> np.ndarray:
    """Lognormal document lengths with the given mean, clipped to [1, MAX_DOC_TOKENS]."""
    median = mean_doc_tokens / np.exp(DOC_SIGMA ** 2 / 2)
    lengths = rng.lognormal(np.log(median), DOC_SIGMA, size=n)
    return np.clip(np.rint(lengths), 1, MAX_DOC_TOKENS).astype(np.int64)


def make_chunk(index: int, *, words: pa.StringArray, cdf: np.ndarray, pairs: np.ndarray,
               mean_doc_tokens: float, seed: int, first_doc_id: int) -> tuple[pa.Table, int]:
    """Chunk ``index`` of the corpus: a table of ``ROWS_PER_CHUNK`` rows, and its token count.

    Chunks depend only on ``(seed, index)``, so a corpus is the same whatever the sharding.
    """
    rng = np.random.default_rng([seed, index])
    n = ROWS_PER_CHUNK
    lengths = _doc_lengths(rng, n, mean_doc_tokens)
    is_null = rng.random(n) < NULL_FRACTION
    is_empty = ~is_null & (rng.random(n) < EMPTY_FRACTION)
    lengths[is_null | is_empty] = 0
    ids = np.searchsorted(cdf, rng.random(int(lengths.sum())), side="right")
    np.minimum(ids, len(cdf) - 1, out=ids)  # guards against float round-off at the top
    ids, lengths = _plant(ids, lengths, pairs)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    docs = pa.ListArray.from_arrays(pa.array(offsets), words.take(pa.array(ids)))
    text = pc.binary_join(docs, " ")
    text = pc.if_else(pa.array(lengths > 0), pc.binary_join_element_wise(text, ".", ""), text)
    text = pc.if_else(pa.array(is_null), pa.scalar(None, pa.string()), text)
    doc_ids = pa.array(np.arange(first_doc_id, first_doc_id + n, dtype=np.int64))
    return pa.table([doc_ids, text], schema=SCHEMA), len(ids)


def _chunks(**kwargs: Any) -> Iterator[tuple[pa.Table, int]]:
    index = 0
    while True:
        yield make_chunk(index, first_doc_id=index * ROWS_PER_CHUNK, **kwargs)
        index += 1


def _prepare_output(out_dir: Path) -> Path:
    """Refuse a non-empty output directory; return a fresh staging directory beside it."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir}: exists and is not an empty directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = out_dir.with_name(f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    stage.mkdir()
    return stage


def make_corpus(out_dir: str | Path, *, gigabytes: float, shards: int,
                vocab_size: int = 1_000_000, zipf_s: float = 1.05,
                mean_doc_tokens: float = 32.0, seed: int = 0, plant: int = 0,
                verbose: bool = True) -> dict[str, Any]:
    """Write about ``gigabytes`` GB (10**9 bytes) of UTF-8 text as ``shards`` Parquet files.

    Files are ``part-00000.parquet``...: columns ``doc_id`` (int64) and ``text`` (string),
    zstd-compressed, row groups of 65,536 rows. Every shard gets about the same amount of text.
    The directory is built beside ``out_dir`` and renamed into place at the end; ``out_dir``
    must not exist or be empty. Returns the summary also written to ``corpus.json``: files,
    rows, tokens, text_bytes, the settings, and the planted pairs as words.
    """
    if gigabytes <= 0 or shards < 1:
        raise ValueError("gigabytes must be positive and shards at least 1")
    out = Path(out_dir).absolute()
    stage = _prepare_output(out)
    started = time.perf_counter()
    try:
        words = make_words(vocab_size)
        pairs = choose_planted_pairs(vocab_size, plant, seed)
        chunks = _chunks(words=words, cdf=zipf_cdf(vocab_size, zipf_s), pairs=pairs,
                         mean_doc_tokens=mean_doc_tokens, seed=seed)
        target = gigabytes * 1e9
        files, totals = _write_shards(stage, chunks, shards=shards, target_bytes=target,
                                      started=started, verbose=verbose)
        summary: dict[str, Any] = {
            "files": files, **totals,
            "settings": {"gigabytes": gigabytes, "shards": shards, "vocab_size": vocab_size,
                         "zipf_s": zipf_s, "mean_doc_tokens": mean_doc_tokens, "seed": seed,
                         "plant": plant, "rows_per_row_group": ROWS_PER_CHUNK},
            "planted_pairs": [[words[int(a)].as_py(), words[int(b)].as_py()] for a, b in pairs],
            "seconds": round(time.perf_counter() - started, 2),
        }
        (stage / MANIFEST).write_text(json.dumps(summary, indent=1))
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return summary


def _write_shards(stage: Path, chunks: Iterator[tuple[pa.Table, int]], *, shards: int,
                  target_bytes: float, started: float, verbose: bool
                  ) -> tuple[list[str], dict[str, int]]:
    """Fill ``shards`` files with chunks until each holds its share of ``target_bytes``."""
    files: list[str] = []
    rows = tokens = text_bytes = 0
    for shard in range(shards):
        name = f"part-{shard:05d}.parquet"
        shard_target = target_bytes * (shard + 1) / shards
        with pq.ParquetWriter(stage / name, SCHEMA, compression="zstd") as writer:
            while True:  # at least one chunk per shard
                table, n_tokens = next(chunks)
                writer.write_table(table, row_group_size=ROWS_PER_CHUNK)
                rows += table.num_rows
                tokens += n_tokens
                text_bytes += int(pc.sum(pc.binary_length(table["text"])).as_py() or 0)
                if text_bytes >= shard_target:
                    break
        files.append(name)
        if verbose:
            elapsed = time.perf_counter() - started
            print(f"{name}: {rows:,} rows, {tokens:,} tokens, {text_bytes / 1e9:.3f} GB text "
                  f"so far ({elapsed:.1f} s, {text_bytes / 1e6 / elapsed:.0f} MB/s)",
                  file=sys.stderr, flush=True)
    return files, {"rows": rows, "tokens": tokens, "text_bytes": text_bytes}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``make_corpus.py OUT_DIR --gigabytes G --shards N [...]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="output directory (must not exist or be empty)")
    parser.add_argument("--gigabytes", type=float, default=1.0,
                        help="raw UTF-8 text to write, in GB of 10**9 bytes (default 1.0)")
    parser.add_argument("--shards", type=int, default=16, help="Parquet files (default 16)")
    parser.add_argument("--vocab-size", type=int, default=1_000_000,
                        help="distinct pseudo-words (default 1,000,000)")
    parser.add_argument("--zipf-s", type=float, default=1.05, help="Zipf exponent (default 1.05)")
    parser.add_argument("--mean-doc-tokens", type=float, default=32.0,
                        help="mean tokens per document before clipping (default 32)")
    parser.add_argument("--plant", type=int, default=0,
                        help="planted always-adjacent word pairs (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    try:
        summary = make_corpus(args.out_dir, gigabytes=args.gigabytes, shards=args.shards,
                              vocab_size=args.vocab_size, zipf_s=args.zipf_s,
                              mean_doc_tokens=args.mean_doc_tokens, seed=args.seed,
                              plant=args.plant, verbose=not args.quiet)
    except (FileExistsError, ValueError) as exc:
        print(f"make_corpus: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "planted_pairs"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
