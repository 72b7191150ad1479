"""The global vocabulary: per-shard counts, their merge, pruning, and the derived tables.

Counting is ``count_shard`` per shard (Arrow's dictionary encoding, then ``bincount``),
``merge_counts`` as a reduction on the workers, and ``finalize`` once. A budget on distinct
words (``max_vocab_size``, as in gensim) is enforced at every step, so memory stays bounded
however many distinct tokens the corpus holds; what the budget cut is counted and reported.
Counting can keep each shard's tokens as local ids (:mod:`dw2v.local_ids`) for encoding.
"""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dw2v.atomic import replaced
from dw2v.config import IngestConfig, VocabConfig, to_dict
from dw2v.errors import EmptyVocabularyError, InputError
from dw2v.ingest import ShardInfo, _all_null, iter_text
from dw2v.local_ids import LocalIdsWriter
from dw2v.tokenize import encode_words, tokenize_ids

logger = logging.getLogger(__name__)

COUNT_SCHEMA = pa.schema([("token", pa.string()), ("count", pa.int64())])
METADATA_KEY = b"dw2v.vocab"
#: The vocabulary's file name in a model or work directory.
VOCAB_FILE = "vocab.parquet"
FORMAT_VERSION = 1
#: Partial counts are merged once this many (token, count) rows are buffered.
_FLUSH_ROWS = 2_000_000


@dataclass(frozen=True)
class CountStats:
    """What was seen while counting some shards; adds up across shards."""

    files: int = 0
    skipped_files: tuple[str, ...] = ()
    rows: int = 0
    null_rows: int = 0
    empty_rows: int = 0
    tokens: int = 0
    #: Words cut by the ``max_vocab_size`` budget, counted at every cut (a word cut in several
    #: shards or merge steps counts each time), and the occurrences they carried (exact).
    budget_pruned_distinct: int = 0
    budget_pruned_tokens: int = 0
    #: Tokens longer than ``TokenizerConfig.max_token_bytes``, dropped by the tokenizer (not in
    #: ``tokens``; a row left with no other token counts as empty).
    long_tokens_dropped: int = 0

    @property
    def documents(self) -> int:
        """Rows that held at least one token."""
        return self.rows - self.null_rows - self.empty_rows

    def __add__(self, other: "CountStats") -> "CountStats":
        values = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        return CountStats(**values)


@dataclass(frozen=True)
class Counts:
    """Token counts of some shards (``token``: string, ``count``: int64) and their stats."""

    table: pa.Table
    stats: CountStats


def prune(table: pa.Table, budget: int | None) -> tuple[pa.Table, int, int]:
    """Keep the ``budget`` most frequent tokens (ties by token); return what was cut too."""
    if budget is None or table.num_rows <= budget:
        return table, 0, 0
    order = pc.sort_indices(table, sort_keys=[("count", "descending"), ("token", "ascending")])
    cut = pc.take(table["count"], order[budget:])
    # take, not slice: a slice would carry (and ship between workers) the cut rows too
    return table.take(order[:budget]), len(cut), int(pc.sum(cut).as_py())


def _sum_counts(tables: Sequence[pa.Table]) -> pa.Table:
    """Add up count tables by token (dictionary-encode the tokens, then ``bincount``)."""
    if len(tables) == 1:
        return tables[0]
    combined = pa.concat_tables(tables)
    dictionary, ids = encode_words(combined["token"].combine_chunks())
    sums = np.bincount(ids, weights=combined["count"].to_numpy(),
                       minlength=len(dictionary))  # float64: exact below 2**53
    return pa.table([dictionary, pa.array(sums.astype(np.int64))], schema=COUNT_SCHEMA)


class _Accumulator:
    """Buffers partial count tables and merges them when the buffer grows, under a budget."""

    def __init__(self, budget: int | None) -> None:
        self.budget = budget
        self.tables: list[pa.Table] = []
        self.buffered = 0
        self.pruned_distinct = 0
        self.pruned_tokens = 0

    def add(self, table: pa.Table) -> None:
        self.tables.append(table)
        self.buffered += table.num_rows
        if self.buffered > max(_FLUSH_ROWS, 2 * (self.budget or 0)):
            self.flush()

    def flush(self) -> pa.Table:
        merged = _sum_counts(self.tables) if self.tables else COUNT_SCHEMA.empty_table()
        merged, distinct, tokens = prune(merged, self.budget)
        self.pruned_distinct += distinct
        self.pruned_tokens += tokens
        self.tables, self.buffered = [merged], merged.num_rows
        return merged


def count_shard(shard: ShardInfo, config: IngestConfig, budget: int | None = None,
                data: Any = None, local: str | None = None) -> Counts:
    """Count the tokens of one shard (a Dask task; ``data``: an in-memory shard's part).

    Each batch is dictionary-encoded and its indices counted; with ``local`` (a directory
    path) those indices, the dictionaries and the tokens per row are also written there
    (:mod:`dw2v.local_ids`), so encoding needs neither the text nor the tokenizer again."""
    if shard.empty:
        return Counts(COUNT_SCHEMA.empty_table(), CountStats(skipped_files=(shard.url,)))
    with ExitStack() as stack:
        writer = None if local is None else stack.enter_context(LocalIdsWriter(local))
        acc = _Accumulator(budget)
        rows = nulls = empty = tokens = long_dropped = 0
        for text in iter_text(shard, config, data):
            batch = tokenize_ids(text, config.tokenizer)
            lengths = batch.row_lengths
            rows += len(text)
            nulls += text.null_count
            empty += int((lengths == 0).sum()) - text.null_count
            tokens += len(batch.ids)
            long_dropped += batch.long_dropped
            counted = np.bincount(batch.ids, minlength=len(batch.dictionary))
            used = counted > 0  # the dictionary may hold entries no token refers to
            table = pa.table([batch.dictionary, pa.array(counted.astype(np.int64))],
                             schema=COUNT_SCHEMA)
            acc.add(table if used.all() else table.filter(pa.array(used)))
            if writer is not None:
                writer.append(batch.dictionary, batch.ids, lengths)
        if rows and nulls == rows:
            raise _all_null(shard.url, config.text_column, rows)
    table = acc.flush()
    # a file read as byte ranges counts once (its first range)
    stats = CountStats(files=int(shard.first_part), rows=rows, null_rows=nulls,
                       empty_rows=empty, tokens=tokens,
                       budget_pruned_distinct=acc.pruned_distinct,
                       budget_pruned_tokens=acc.pruned_tokens, long_tokens_dropped=long_dropped)
    return Counts(table, stats)


def token_buckets(tokens: pa.Array, buckets: int) -> np.ndarray:
    """A bucket in ``[0, buckets)`` for each token, from the 64-bit hash of all its bytes
    (:func:`dw2v.kernels.lookup.string_hashes`; stable across processes, unlike Python's
    ``hash``)."""
    from dw2v.kernels.lookup import string_hashes  # Numba: not at import
    from dw2v.word_index import string_buffers

    offsets, data = string_buffers(tokens)
    hashes = np.empty(len(tokens), np.uint64)
    string_hashes(offsets, data, hashes)
    return ((hashes >> np.uint64(33)) % np.uint64(buckets)).astype(np.int64)


def split_counts(counts: Counts, buckets: int) -> tuple[Counts, ...]:
    """Partition counts by token hash, so that each bucket can be merged on its own; the
    stats travel with bucket 0 (counted once)."""
    table = counts.table
    bucket = token_buckets(table["token"].combine_chunks(), buckets)
    order = np.argsort(bucket, kind="stable")
    bounds = np.searchsorted(bucket[order], np.arange(buckets + 1))
    # a table per bucket, not slices of one: a slice is pickled with its parent's buffers
    return tuple(Counts(table.take(order[bounds[b]:bounds[b + 1]]),
                        counts.stats if b == 0 else CountStats()) for b in range(buckets))


def merge_counts(parts: Sequence[Counts], budget: int | None = None) -> Counts:
    """Add partial counts (a Dask reduction task), pruning to the budget."""
    stats = sum((p.stats for p in parts), CountStats())
    table, distinct, tokens = prune(_sum_counts([p.table for p in parts]), budget)
    stats = replace(stats, budget_pruned_distinct=stats.budget_pruned_distinct + distinct,
                    budget_pruned_tokens=stats.budget_pruned_tokens + tokens)
    return Counts(table, stats)


@dataclass(frozen=True)
class Vocabulary:
    """The final vocabulary: token ``i`` has id ``i``; ids by count descending, ties by token.

    ``stats`` describes the corpus counted; ``distinct_seen`` is the number of distinct tokens
    before ``min_count`` (after any budget pruning); ``min_count`` is the threshold applied,
    which ``max_final_vocab`` may raise above the configured one, as in gensim.
    """

    tokens: pa.StringArray
    counts: np.ndarray
    config: VocabConfig
    stats: CountStats
    distinct_seen: int
    min_count: int
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def retained_tokens(self) -> int:
        return int(self.counts.sum())

    @cached_property
    def index(self) -> dict[str, int]:
        """Token to id (built on first use; for lookups, not for bulk encoding)."""
        return {token: i for i, token in enumerate(self.tokens.to_pylist())}

    @cached_property
    def noise_distribution(self) -> np.ndarray:
        """P(noise word = i) proportional to count_i ** ns_exponent (float64, sums to 1)."""
        weights = self.counts.astype(np.float64) ** self.config.ns_exponent
        return weights / weights.sum()

    @cached_property
    def keep_probabilities(self) -> np.ndarray:
        """word2vec's subsampling: keep word i with min(1, (sqrt(f/s) + 1) * s / f)."""
        if self.config.sample == 0:
            return np.ones(len(self), dtype=np.float32)
        threshold = self.config.sample * self.retained_tokens
        counts = self.counts.astype(np.float64)
        keep = (np.sqrt(counts / threshold) + 1.0) * threshold / counts
        return np.minimum(keep, 1.0).astype(np.float32)

    def expected_after_subsampling(self) -> int:
        """Tokens one epoch is expected to keep after subsampling."""
        return int(round(float(np.dot(self.counts, self.keep_probabilities))))


def extend(base: Vocabulary, new: Vocabulary, config: VocabConfig) -> Vocabulary:
    """A trained model's vocabulary extended with a new corpus's words (continued training).

    ``new`` holds the new corpus's counts (every word: no ``min_count`` applied). The base words
    keep their ids, with the new counts added to theirs; the new corpus's other words with at
    least ``config.min_count`` occurrences follow, by count descending then token. Noise
    distribution and keep-probabilities then follow from the merged counts."""
    base_tokens = base.tokens.to_pylist()
    new_index = {t: i for i, t in enumerate(new.tokens.to_pylist())}
    counts = base.counts.astype(np.int64).copy()
    for i, token in enumerate(base_tokens):
        j = new_index.pop(token, None)
        if j is not None:
            counts[i] += int(new.counts[j])
    added = sorted(((int(new.counts[j]), t) for t, j in new_index.items()
                    if new.counts[j] >= config.min_count), key=lambda ct: (-ct[0], ct[1]))
    tokens = pa.array(base_tokens + [t for _, t in added], pa.string())
    all_counts = np.concatenate([counts, np.array([c for c, _ in added], np.int64)])
    return Vocabulary(tokens, all_counts, config, base.stats + new.stats,
                      base.distinct_seen + len(added), config.min_count,
                      {"base_words": len(base_tokens), "added_words": len(added)})


def finalize(counts: Counts | Sequence[Counts], config: VocabConfig) -> Vocabulary:
    """Apply ``min_count`` and ``max_final_vocab`` and order ids (runs once, on a worker).

    ``counts`` may be a list of disjoint buckets (see :func:`split_counts`)."""
    if not isinstance(counts, Counts):
        counts = Counts(pa.concat_tables([c.table for c in counts]),
                        sum((c.stats for c in counts), CountStats()))
    # buckets were pruned to budget / buckets each: one global cut makes it the global top
    counts = merge_counts([counts], config.max_vocab_size)
    table = counts.table.sort_by([("count", "descending"), ("token", "ascending")])
    count_array = table["count"].to_numpy()
    min_count = config.min_count
    if config.max_final_vocab is not None and config.max_final_vocab < len(count_array):
        # gensim's rule: raise min_count until at most max_final_vocab words are left
        min_count = max(min_count, int(count_array[config.max_final_vocab]) + 1)
    keep = int(np.searchsorted(-count_array, -min_count, side="right"))
    if keep == 0:
        most = int(count_array[0]) if len(count_array) else 0
        raise EmptyVocabularyError(
            f"empty vocabulary: no token occurs at least min_count={min_count} times "
            f"({len(count_array)} distinct tokens, the most frequent {most} times in "
            f"{counts.stats.tokens} tokens); lower --min-count or add text")
    tokens = pc.take(table["token"], pa.array(np.arange(keep))).combine_chunks()  # a copy
    return Vocabulary(tokens=tokens, counts=count_array[:keep].copy(), config=config,
                      stats=counts.stats, distinct_seen=len(count_array), min_count=min_count)


def _metadata(vocab: Vocabulary) -> dict[str, Any]:
    stats = {f.name: getattr(vocab.stats, f.name) for f in fields(vocab.stats)}
    stats["skipped_files"] = list(stats["skipped_files"])
    return {
        "format_version": FORMAT_VERSION,
        "size": len(vocab),
        "total_tokens": vocab.stats.tokens,
        "retained_tokens": vocab.retained_tokens,
        "documents": vocab.stats.documents,
        "distinct_seen": vocab.distinct_seen,
        "min_count": vocab.min_count,
        "settings": to_dict(vocab.config),
        "stats": stats,
        **vocab.extra,
    }


def save(vocab: Vocabulary, path: str | Path) -> None:
    """Write ``vocab.parquet`` (token, count, id) with metadata; atomic (write, then rename)."""
    path = Path(path)
    table = pa.table({
        "token": vocab.tokens,
        "count": pa.array(vocab.counts, pa.int64()),
        "id": pa.array(np.arange(len(vocab), dtype=np.int32)),
    })
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(_metadata(vocab))})
    with replaced(path) as tmp:
        pq.write_table(table, tmp)


def load(path: str | Path) -> Vocabulary:
    """Read a vocabulary written by :func:`save` (a file, or a directory holding one).

    A missing, unreadable or malformed file is an :class:`InputError` naming it."""
    path = Path(path)
    if path.is_dir():
        path = path / VOCAB_FILE
    if not path.exists():
        raise InputError(str(path), "missing: no vocabulary")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(str(path), f"cannot read vocabulary: not a readable Parquet file "
                                    f"({exc})") from None
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None or table.column_names[:3] != ["token", "count", "id"]:
        raise InputError(str(path), "not a dw2v vocabulary (no dw2v metadata or wrong columns)")
    types = [table.schema.field(name).type for name in ("token", "count", "id")]
    if not (pa.types.is_string(types[0]) and pa.types.is_integer(types[1])
            and pa.types.is_integer(types[2])):
        raise InputError(str(path), "not a dw2v vocabulary (columns token, count, id are "
                                    f"{', '.join(map(str, types))}; expected string, int64, "
                                    "int32)")
    if table["token"].null_count or table["count"].null_count or table["id"].null_count:
        raise InputError(str(path), "vocabulary has null tokens, counts or ids")
    ids = table["id"].to_numpy()
    if not np.array_equal(ids, np.arange(len(ids))):
        raise InputError(str(path), "vocabulary ids are not 0..n-1 in order")
    known = {"format_version", "size", "total_tokens", "retained_tokens", "documents",
             "distinct_seen", "min_count", "settings", "stats"}
    try:
        meta = json.loads(raw)
        stats = {f.name: meta["stats"][f.name] for f in fields(CountStats)
                 if f.name in meta["stats"]}  # a field a newer dw2v added is left out
        stats["skipped_files"] = tuple(stats.get("skipped_files", ()))
        return Vocabulary(
            tokens=table["token"].combine_chunks(),
            counts=table["count"].to_numpy().astype(np.int64, copy=True),
            config=VocabConfig(**meta["settings"]),
            stats=CountStats(**stats),
            distinct_seen=int(meta["distinct_seen"]),
            min_count=int(meta["min_count"]),
            extra={k: v for k, v in meta.items() if k not in known},
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # ConfigError (bad settings) is a ValueError too
        reason = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
        raise InputError(str(path), f"malformed dw2v vocabulary metadata ({reason})") from None
