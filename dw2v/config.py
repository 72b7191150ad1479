"""Frozen, validated settings for every stage; built once and passed everywhere.

Field names follow gensim's ``Word2Vec`` where one exists (``min_count``, ``max_vocab_size``,
``max_final_vocab``, ``sample``, ``ns_exponent``) so that users can carry their settings over.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import typing
from dataclasses import asdict, dataclass, field
from types import UnionType
from typing import Any, Mapping, Union

from dw2v.errors import ConfigError

#: Letters and digits of any script; an apostrophe joins two such runs ("don't", "rock'n'roll").
DEFAULT_TOKEN_PATTERN = r"[\p{L}\p{N}]+(?:'[\p{L}\p{N}]+)*"

#: word2vec C's MAX_SENTENCE_LENGTH and gensim's MAX_WORDS_IN_BATCH.
MAX_SENTENCE_LENGTH = 10_000

#: Tokens longer than this many UTF-8 bytes are dropped and counted (word2vec C cuts words at
#: its MAX_STRING of 100 bytes): a 50 MB "word" never enters the vocabulary, and every
#: exported model reads back in tools with such a limit.
MAX_TOKEN_BYTES = 100
#: The longest word dw2v's word2vec binary reader accepts (dw2v.word2vec_format).
MAX_WORD_BYTES = 10_000


def _require(ok: bool, name: str, value: Any, rule: str) -> None:
    """Raise a ConfigError naming ``name`` and ``value`` unless ``ok`` (``_checked`` adds the
    class that raised it)."""
    if not ok:
        raise ConfigError(f"{name}={value!r}: {rule}", field=name, value=value, rule=rule)


_TYPE_RULES: dict[Any, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "must be true or false"),
    int: ((int,), "must be an integer"),
    float: ((int, float), "must be a number"),
    str: ((str,), "must be a string"),
}


def _check_types(config: Any) -> None:
    """Refuse a field whose value is not of its declared type (a TOML file can give ``"100"``
    for an integer or ``true`` for a count: bool is not taken for a number here), before the
    ranges are checked; also refuse NaN and infinite numbers."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        hint = hints[f.name]
        options = typing.get_args(hint) if typing.get_origin(hint) in (Union, UnionType) \
            else (hint,)
        if value is None and type(None) in options:
            continue
        base = next((o for o in options if o is not type(None)), hint)
        rule = _TYPE_RULES.get(base)
        if rule is not None:
            kinds, text = rule
            ok = isinstance(value, kinds) and (base is bool or not isinstance(value, bool))
            if ok and base is float:
                ok = math.isfinite(value)
                text = "must be a finite number"
            _require(ok, f.name, value, text + (" (or unset)" if type(None) in options else ""))
        elif typing.get_origin(base) in (Mapping, collections.abc.Mapping):
            _require(isinstance(value, Mapping) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()),
                f.name, value, "must be a table of strings")
        elif isinstance(base, type) and dataclasses.is_dataclass(base):
            _require(isinstance(value, base), f.name, value, f"must be a {base.__name__}")


def _re2_error(pattern: str) -> str | None:
    """Why RE2 (pyarrow's regex engine, which tokenizes) refuses ``pattern``, or None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        pc.count_substring_regex(pa.array([""], pa.string()), pattern=pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        return str(exc).removeprefix("Invalid regular expression: ")
    return None


def _checked(cls: type) -> type:
    """Run :func:`_check_types` before a settings class's own checks, and mark the errors
    with the class, so the command line can name the flag or key the user typed."""
    own = cls.__post_init__  # type: ignore[attr-defined]

    def __post_init__(self: Any) -> None:
        try:
            normalize = getattr(self, "_normalize", None)
            if normalize is not None:
                normalize()
            _check_types(self)
            own(self)
        except ConfigError as exc:
            exc.owner = exc.owner or cls.__name__
            raise

    cls.__post_init__ = __post_init__  # type: ignore[attr-defined]
    return cls


@_checked
@dataclass(frozen=True)
class TokenizerConfig:
    """How raw text becomes tokens: lowercasing and a word regex (RE2 syntax, findall semantics)."""

    lowercase: bool = True
    pattern: str = DEFAULT_TOKEN_PATTERN
    max_sentence_length: int = MAX_SENTENCE_LENGTH
    max_token_bytes: int = MAX_TOKEN_BYTES

    def __post_init__(self) -> None:
        _require(bool(self.pattern), "pattern", self.pattern, "must not be empty")
        # the default is known good (and checking it would import pyarrow with dw2v)
        problem = None if self.pattern == DEFAULT_TOKEN_PATTERN else _re2_error(self.pattern)
        _require(problem is None, "pattern", self.pattern,
                 f"not a valid RE2 regex ({problem}); RE2, the engine that tokenizes, has no "
                 "look-arounds or back-references")
        _require(self.max_sentence_length >= 2, "max_sentence_length", self.max_sentence_length,
                 "must be at least 2")
        _require(1 <= self.max_token_bytes <= MAX_WORD_BYTES, "max_token_bytes",
                 self.max_token_bytes, f"must be from 1 to {MAX_WORD_BYTES:,} (the longest word "
                 "a word2vec binary file read back here may hold)")

    @property
    def is_default_pattern(self) -> bool:
        return self.pattern == DEFAULT_TOKEN_PATTERN


@_checked
@dataclass(frozen=True)
class IngestConfig:
    """Where the text is and how it is read: column name, batch size, fsspec options."""

    text_column: str = "text"
    batch_size: int = 65_536
    storage_options: Mapping[str, str] = field(default_factory=dict)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    #: Uncompressed text is read as byte ranges of at most this size, each a shard of its own
    #: (smaller where the text would make fewer than four per worker, down to 1 MiB:
    #: ``prepare.text_block``); a compressed file is always one shard.
    text_block_bytes: int = 64 * 2**20

    def __post_init__(self) -> None:
        _require(bool(self.text_column), "text_column", self.text_column, "must not be empty")
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "must be at least 1")
        _require(self.text_block_bytes >= 1, "text_block_bytes", self.text_block_bytes,
                 "must be at least 1 byte")


@_checked
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


@_checked
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
    #: Kernel threads per worker process (Hogwild); None: the threads the worker has (Dask's
    #: ``nthreads``: ``--threads-per-worker``, or ``dask worker --nthreads``). 1 is
    #: deterministic for a seed.
    threads: int | None = None
    compute_loss: bool = True
    #: Skip-gram: HogBatch (one set of negatives per centre word, shared by its window), the
    #: default because it measured 1.26x faster than per-pair negatives at the same quality
    #: (benchmarks/RESULTS.md). CBOW always shares its negatives; this has no effect there.
    shared_negatives: bool = True
    #: CBOW on the CPU: this many consecutive centre words share one draw of negatives, whose
    #: rows then move once per block (at up to 16 negatives; above, a draw per centre). 1 is
    #: word2vec's draw per centre, the default: 4 trained 1.2x as many words/s but at 85-91 %
    #: of gensim's analogy accuracy on the same tokens (benchmarks/RESULTS.md §24). The GPU's
    #: CBOW kernel draws per centre word.
    cbow_block: int = 1
    #: Words each worker trains between two parameter averagings (a round); None (or "auto")
    #: chooses them from the run's size (``dw2v.plan.sync_period``): about 128 averagings
    #: per run, rounds of 20,000 to 1,000,000 words.
    sync_every: int | None = None
    #: Each worker's learning rate is ``alpha`` (and ``min_alpha``) times the number of workers
    #: training at once: averaging N workers' updates of a row they all touched moves it by
    #: the mean of their updates, where one worker reading the same words would move it by
    #: about their sum (the linear scaling rule of large-batch SGD). See dw2v.train.
    scale_lr: bool = True
    #: The row schedule of the exchange (after Intel's pWord2Vec): the ``hot_rows`` most
    #: frequent words' rows are averaged every round, the others every ``cold_every`` rounds
    #: (each in turn), since on Zipfian text most rows change little in a round. None (auto):
    #: the words expected at least once per round in a worker's words. ``cold_every`` 1:
    #: every touched row every round. Measured in benchmarks/RESULTS.md §10.
    hot_rows: int | None = None
    cold_every: int = 1
    #: A round's exchange runs beside the next round's training, which settles on it after
    #: (one round stale), so that the workers do not wait for it; checkpoints and the last
    #: round are exchanged in step. Measured in benchmarks/RESULTS.md §10.
    overlap: bool = False
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
        _require(self.cbow_block >= 1, "cbow_block", self.cbow_block, "must be at least 1")
        _require(self.alpha > 0, "alpha", self.alpha, "must be positive")
        _require(0 <= self.min_alpha <= self.alpha, "min_alpha", self.min_alpha,
                 "must be in [0, alpha]")
        _require(self.epochs >= 1, "epochs", self.epochs, "must be at least 1")
        _require(self.threads is None or self.threads >= 1, "threads", self.threads,
                 "must be at least 1")
        _require(0 <= self.seed < 2**63, "seed", self.seed,
                 "must be an integer from 0 to 2^63 - 1")
        _require(self.sync_every is None or (isinstance(self.sync_every, int)
                                             and self.sync_every >= 1_000),
                 "sync_every", self.sync_every, "must be at least 1000 words, or 'auto'")
        _require(self.hot_rows is None or self.hot_rows >= 0, "hot_rows", self.hot_rows,
                 "must be 0 or more, or 'auto'")
        _require(self.cold_every >= 1, "cold_every", self.cold_every, "must be at least 1")
        _require(self.device in ("cpu", "gpu", "auto"), "device", self.device,
                 "must be 'cpu', 'gpu' or 'auto'")

    def _normalize(self) -> None:
        if self.sync_every == "auto":
            object.__setattr__(self, "sync_every", None)
        if self.hot_rows == "auto":
            object.__setattr__(self, "hot_rows", None)

    @property
    def sg(self) -> bool:
        return self.model == "skipgram"


@_checked
@dataclass(frozen=True)
class ClusterConfig:
    """Which Dask cluster to use; with no address, an embedded LocalCluster."""

    scheduler: str | None = None
    scheduler_file: str | None = None
    n_workers: int | None = None
    threads_per_worker: int | None = None
    dashboard_address: str | None = ":8787"
    #: Seconds training waits for workers when the cluster has none before it stops (the last
    #: checkpoint is kept for --resume).
    worker_timeout: float = 300.0
    #: Seconds to wait for a scheduler (--scheduler, --scheduler-file) to answer.
    connect_timeout: float = 30.0
    #: Seconds between checkpoints while training (0: after every round); one is always
    #: written at the end.
    checkpoint_every: float = 120.0
    #: Seconds a trainer waits for a peer in an exchange before it names it hung or lost
    #: (the group then restarts without it from the last checkpoint).
    exchange_timeout: float = 120.0

    def __post_init__(self) -> None:
        _require(self.worker_timeout > 0, "worker_timeout", self.worker_timeout,
                 "must be positive")
        _require(self.connect_timeout > 0, "connect_timeout", self.connect_timeout,
                 "must be positive")
        _require(self.checkpoint_every >= 0, "checkpoint_every", self.checkpoint_every,
                 "must be 0 or more seconds")
        _require(self.exchange_timeout > 0, "exchange_timeout", self.exchange_timeout,
                 "must be positive")
        _require(self.dashboard_address is None or _valid_address(self.dashboard_address),
                 "dashboard_address", self.dashboard_address,
                 "must be HOST:PORT, :PORT or PORT with a port from 0 to 65535 (0: any free "
                 "port)")
        _require(not (self.scheduler and self.scheduler_file), "scheduler", self.scheduler,
                 "give a scheduler address or a scheduler file, not both")
        for name in ("n_workers", "threads_per_worker"):
            value = getattr(self, name)
            _require(value is None or value >= 1, name, value, "must be at least 1")
        if self.scheduler or self.scheduler_file:
            _require(self.n_workers is None and self.threads_per_worker is None, "n_workers",
                     self.n_workers, "--workers/--threads-per-worker apply only to the "
                     "embedded LocalCluster, not to an existing scheduler")


def _valid_address(text: str) -> bool:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (the forms Dask's dashboard address takes)."""
    host, _, port = text.rpartition(":")
    return (port.isdigit() and int(port) <= 65_535 and " " not in host
            and (bool(host) or text.startswith(":") or ":" not in text))


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a training run."""

    ingest: IngestConfig = IngestConfig()
    vocab: VocabConfig = VocabConfig()
    train: TrainConfig = TrainConfig()
    cluster: ClusterConfig = ClusterConfig()


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready copy of a config dataclass (for metadata and reports)."""
    out = asdict(config)
    if "storage_options" in out:  # may hold credentials: record only the keys
        out["storage_options"] = sorted(out["storage_options"])
    return out
