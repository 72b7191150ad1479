"""Frozen, validated settings for every stage; built once and passed everywhere.

Field names follow gensim's ``Word2Vec`` where one exists (``min_count``, ``max_vocab_size``,
``max_final_vocab``, ``sample``, ``ns_exponent``) so that users can carry their settings over.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from dw2v.errors import ConfigError

#: Letters and digits of any script; an apostrophe joins two such runs ("don't", "rock'n'roll").
DEFAULT_TOKEN_PATTERN = r"[\p{L}\p{N}]+(?:'[\p{L}\p{N}]+)*"

#: word2vec C's MAX_SENTENCE_LENGTH and gensim's MAX_WORDS_IN_BATCH.
MAX_SENTENCE_LENGTH = 10_000


def _require(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r}: {rule}")


@dataclass(frozen=True)
class TokenizerConfig:
    """How raw text becomes tokens: lowercasing and a word regex (RE2 syntax, findall semantics)."""

    lowercase: bool = True
    pattern: str = DEFAULT_TOKEN_PATTERN
    max_sentence_length: int = MAX_SENTENCE_LENGTH

    def __post_init__(self) -> None:
        _require(bool(self.pattern), "pattern", self.pattern, "must not be empty")
        try:
            # Python's re lacks \p{..}; check the rest of the syntax with the classes swapped out.
            re.compile(re.sub(r"\\[pP]\{\w+\}", "a", self.pattern))
        except re.error as exc:
            raise ConfigError(f"pattern={self.pattern!r}: not a valid regex ({exc})") from None
        _require(self.max_sentence_length >= 2, "max_sentence_length", self.max_sentence_length,
                 "must be at least 2")

    @property
    def is_default_pattern(self) -> bool:
        return self.pattern == DEFAULT_TOKEN_PATTERN


@dataclass(frozen=True)
class IngestConfig:
    """Where the text is and how it is read: column name, batch size, fsspec options."""

    text_column: str = "text"
    batch_size: int = 65_536
    storage_options: Mapping[str, str] = field(default_factory=dict)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)

    def __post_init__(self) -> None:
        _require(bool(self.text_column), "text_column", self.text_column, "must not be empty")
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "must be at least 1")


@dataclass(frozen=True)
class VocabConfig:
    """Pruning and the two distributions derived from counts (noise and subsampling)."""

    min_count: int = 5
    max_vocab_size: int | None = None
    max_final_vocab: int | None = None
    sample: float = 1e-3
    ns_exponent: float = 0.75
    #: How many partial counts one merge task takes (the reduction's fan-in).
    split_every: int = 8
    #: Counts are split by token hash into this many buckets, merged in parallel; None: 8 for
    #: inputs of 64 MiB or more, else 1 (the split's extra tasks cost more than they save on
    #: small corpora). Depends on the corpus only, never on the number of workers.
    buckets: int | None = None

    def __post_init__(self) -> None:
        _require(self.min_count >= 1, "min_count", self.min_count, "must be at least 1")
        for name in ("max_vocab_size", "max_final_vocab"):
            value = getattr(self, name)
            _require(value is None or value >= 1, name, value, "must be at least 1 (or unset)")
        _require(0.0 <= self.sample < 1.0, "sample", self.sample,
                 "must be in [0, 1); 0 turns subsampling off, 1e-3 to 1e-5 are usual")
        _require(-10.0 <= self.ns_exponent <= 10.0, "ns_exponent", self.ns_exponent,
                 "must be in [-10, 10]; 0.75 is word2vec's")
        _require(self.split_every >= 2, "split_every", self.split_every, "must be at least 2")
        _require(self.buckets is None or self.buckets >= 1, "buckets", self.buckets,
                 "must be at least 1 (or unset: automatic)")


@dataclass(frozen=True)
class TrainConfig:
    """Negative-sampling training: model, sizes, schedule (gensim's names where they exist)."""

    model: str = "skipgram"
    vector_size: int = 100
    window: int = 5
    negative: int = 5
    alpha: float = 0.025
    min_alpha: float = 0.0001
    epochs: int = 5
    seed: int = 1
    #: Kernel threads per worker process (Hogwild); 1 is deterministic for a seed.
    threads: int = 1
    compute_loss: bool = True
    #: Skip-gram: HogBatch (one set of negatives per centre word, shared by its window), the
    #: default because it measured 1.26x faster than per-pair negatives at the same quality
    #: (benchmarks/RESULTS.md). CBOW always shares its negatives; this has no effect there.
    shared_negatives: bool = True
    #: Words each worker trains between two parameter averagings (a round); None (or "auto")
    #: chooses them from the run's size (``dw2v.train.sync_period``): about 128 averagings
    #: per run, rounds of 20,000 to 1,000,000 words.
    sync_every: int | None = None
    #: Each worker's learning rate is ``alpha`` (and ``min_alpha``) times the number of workers
    #: training at once: averaging N workers' updates of a row they all touched moves it by
    #: the mean of their updates, where one worker reading the same words would move it by
    #: about their sum (the linear scaling rule of large-batch SGD). See dw2v.train.
    scale_lr: bool = True
    #: Block momentum of the averaging (BMUF), in [0, 1): 0 (the default) is the plain
    #: touched-row weighted average; None is 1 - 1/workers. See dw2v.merge.
    block_momentum: float | None = 0.0
    device: str = "cpu"
    #: Also write the output vectors (W_out) with the model.
    save_output_vectors: bool = False
    #: A token-id shard that cannot be read during training is skipped with a warning (and
    #: recorded in model.json) instead of stopping the run.
    skip_bad_shards: bool = False

    def __post_init__(self) -> None:
        _require(self.model in ("skipgram", "cbow"), "model", self.model,
                 "must be 'skipgram' or 'cbow'")
        _require(self.vector_size >= 1, "vector_size", self.vector_size, "must be at least 1")
        _require(self.window >= 1, "window", self.window, "must be at least 1")
        _require(self.negative >= 1, "negative", self.negative, "must be at least 1")
        _require(self.alpha > 0, "alpha", self.alpha, "must be positive")
        _require(0 <= self.min_alpha <= self.alpha, "min_alpha", self.min_alpha,
                 "must be in [0, alpha]")
        _require(self.epochs >= 1, "epochs", self.epochs, "must be at least 1")
        _require(self.threads >= 1, "threads", self.threads, "must be at least 1")
        if self.sync_every == "auto":
            object.__setattr__(self, "sync_every", None)
        _require(self.sync_every is None or (isinstance(self.sync_every, int)
                                             and self.sync_every >= 1_000),
                 "sync_every", self.sync_every, "must be at least 1000 words, or 'auto'")
        _require(self.block_momentum is None or 0 <= self.block_momentum < 1, "block_momentum",
                 self.block_momentum, "must be in [0, 1) (or unset: 1 - 1/workers)")
        _require(self.device in ("cpu", "gpu", "auto"), "device", self.device,
                 "must be 'cpu', 'gpu' or 'auto'")

    @property
    def sg(self) -> bool:
        return self.model == "skipgram"


@dataclass(frozen=True)
class ClusterConfig:
    """Which Dask cluster to use; with no address, an embedded LocalCluster of processes."""

    scheduler: str | None = None
    scheduler_file: str | None = None
    n_workers: int | None = None
    threads_per_worker: int | None = None
    dashboard_address: str | None = ":8787"
    #: Seconds training waits for workers when the cluster has none before it stops (the last
    #: checkpoint is kept for --resume).
    worker_timeout: float = 300.0

    def __post_init__(self) -> None:
        _require(self.worker_timeout > 0, "worker_timeout", self.worker_timeout,
                 "must be positive")
        _require(not (self.scheduler and self.scheduler_file), "scheduler", self.scheduler,
                 "give a scheduler address or a scheduler file, not both")
        for name in ("n_workers", "threads_per_worker"):
            value = getattr(self, name)
            _require(value is None or value >= 1, name, value, "must be at least 1")
        if self.scheduler or self.scheduler_file:
            _require(self.n_workers is None and self.threads_per_worker is None, "n_workers",
                     self.n_workers, "--workers/--threads-per-worker apply only to the "
                     "embedded LocalCluster, not to an existing scheduler")


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready copy of a config dataclass (for metadata and reports)."""
    out = asdict(config)
    if "storage_options" in out:  # may hold credentials: record only the keys
        out["storage_options"] = sorted(out["storage_options"])
    return out
