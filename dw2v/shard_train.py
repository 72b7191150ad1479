"""Training on a worker: the kernels over a stream of token-id shards, and the resident
trainer of engine v2 (DESIGN.md) that does it round after round for the whole run.

Pure given (parameters, sentences, learning-rate range, seed): each stretch of sentences gets a
seed from where it lies in the corpus, so a run gives the same vectors however it was planned,
interrupted and resumed (exactly with one kernel thread; up to Hogwild's ordering with several).
"""

from __future__ import annotations

import functools
import dataclasses
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from dw2v.config import TrainConfig
from dw2v.errors import CheckpointWriteError, InputError
from dw2v.kernels import cpu
from dw2v.kernels.cpu_train import train as train_kernel
from dw2v.kernels.averaging import add_rows, nonfinite_rows
from dw2v.merge import (Params, RowUpdate, diverged, load_params, offer, owned, settle,
                        warm_up, write_part)
from dw2v.plan import TrainPlan
from dw2v.token_shards import TokenShard, read_token_shard
from dw2v.vocab import Vocabulary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingTables:
    """What the kernels need from the vocabulary: keep-probabilities and the noise alias table."""

    keep_prob: np.ndarray
    alias_prob: np.ndarray
    alias_idx: np.ndarray

    @classmethod
    def from_vocab(cls, vocab: Vocabulary) -> "SamplingTables":
        alias_prob, alias_idx = cpu.build_alias(vocab.noise_distribution)
        return cls(vocab.keep_probabilities.astype(np.float32), alias_prob, alias_idx)


@dataclass(frozen=True)
class TrainCounters:
    """Counters of one training call (summed over shards and epochs)."""

    words_read: int
    words_kept: int
    examples: int
    loss_sum: float
    loss_terms: int
    seconds: float
    #: Token-id shards skipped as unreadable (``skip_bad_shards``).
    skipped: tuple[str, ...] = ()

    @property
    def loss(self) -> float:
        """Mean sigmoid cross-entropy per term (positive and negative)."""
        return self.loss_sum / self.loss_terms if self.loss_terms else float("nan")

    @property
    def words_per_second(self) -> float:
        return self.words_read / self.seconds if self.seconds else 0.0


#: Input vectors start uniform in +-INIT_SCALE/dim. word2vec C uses 0.5, gensim 4 uses 1.0;
#: on the development corpus 1.0 gave +0.004 analogy accuracy and +0.006 WordSim-353 Spearman
#: over 0.5 for skip-gram (mean of seeds 1-4, benchmarks/RESULTS.md), so dw2v follows gensim.
INIT_SCALE = 1.0


def init_params(vocab_size: int, dim: int, seed: int) -> Params:
    """Input vectors uniform in +-INIT_SCALE/dim, output vectors zero."""
    rng = np.random.default_rng(seed)
    W_in = (rng.random((vocab_size, dim), dtype=np.float32) - np.float32(0.5)) * np.float32(
        2.0 * INIT_SCALE / dim)
    return Params(W_in.astype(np.float32, copy=False),
                  np.zeros((vocab_size, dim), dtype=np.float32))


@dataclass(frozen=True)
class Slice:
    """Sentences ``[s_lo, s_hi)`` of one token-id shard (the ``index``-th of slot ``slot``), in
    one epoch (``words`` ids in all)."""

    shard: str
    index: int
    epoch: int
    s_lo: int
    s_hi: int
    words: int
    slot: int = 0


def stream_slices(shards: Sequence[str | Path], epochs: int, lo: int, hi: int,
                  sizes: Sequence[int] | None = None,
                  skipped: list[str] | None = None, *, slot: int = 0,
                  reader: Callable[[str | Path], TokenShard] = read_token_shard) -> list[Slice]:
    """The sentences of positions ``[lo, hi)`` of a worker's stream (its shards in order, epoch
    after epoch). A sentence belongs to the range its first word falls in, so consecutive
    ranges cover every sentence exactly once. With ``sizes`` (the planned tokens per shard)
    and a ``skipped`` list, an unreadable shard is skipped (its positions stay reserved) and
    named in ``skipped``; otherwise it raises ``InputError``. ``reader`` opens a shard (a
    resident trainer keeps them open)."""
    slices = []
    position = 0
    for epoch in range(epochs):
        for index, path in enumerate(shards):
            try:
                offsets = reader(path).offsets
            except InputError as exc:
                if sizes is None or skipped is None:
                    raise
                if str(path) not in skipped:
                    logger.warning("skipping %s", exc)
                    skipped.append(str(path))
                position += sizes[index]
                if position >= hi:
                    return slices
                continue
            size = int(offsets[-1])
            if position + size > lo and position < hi and size:
                a = int(np.searchsorted(offsets[:-1], lo - position, side="left"))
                b = int(np.searchsorted(offsets[:-1], hi - position, side="left"))
                if b > a:
                    slices.append(Slice(str(path), index, epoch, a, b,
                                        int(offsets[b] - offsets[a]), slot))
            position += size
            if position >= hi:
                return slices
    return slices


#: One kernel call: (the slice, its shard's ids and sentence offsets, the learning-rate range
#: over the slice, its seed) -> the counters (5: words read, kept, examples, loss sum, terms).
Kernel = Callable[[Slice, np.ndarray, np.ndarray, float, float, int], np.ndarray]


#: The loss is scored on every 8th example (a centre word; a pair in the per-pair skip-gram
#: kernel), its terms counted alike: the per-round mean stays an unbiased estimate, at an
#: eighth of the cost (scoring every example took 20-28 % of the kernels' time; RESULTS §17).
LOSS_EVERY = 8


def cpu_kernel(params: Params, tables: SamplingTables, config: TrainConfig,
               touches: tuple[np.ndarray, np.ndarray] | None = None) -> Kernel:
    """The Numba kernels on ``params`` in host memory (updated in place; ``touches``, two
    int64 (V) arrays, receive how often each row was updated)."""

    def run(part: Slice, ids: np.ndarray, offsets: np.ndarray, lr_start: float, lr_end: float,
            seed: int) -> np.ndarray:
        lo, hi = int(offsets[part.s_lo]), int(offsets[part.s_hi])
        counts, _ = train_kernel(
            ids[lo:hi], offsets[part.s_lo:part.s_hi + 1] - lo, params.W_in, params.W_out,
            tables.keep_prob, tables.alias_prob, tables.alias_idx, sg=config.sg,
            window=config.window, negative=config.negative, lr_start=lr_start, lr_end=lr_end,
            seed=seed, threads=config.threads or 1, compute_loss=config.compute_loss,
            loss_every=LOSS_EVERY,
            shared_negatives=config.shared_negatives and config.sg,
            cbow_block=config.cbow_block, touches=touches)
        return counts

    return run


def train_with(slices: Sequence[Slice], kernel: Kernel, vocab_size: int, config: TrainConfig,
               *, lr_start: float, lr_end: float, seed: int, skipped: list[str] | None = None,
               reader: Callable[[str | Path], TokenShard] = read_token_shard) -> TrainCounters:
    """Train over ``slices`` in order with ``kernel`` (CPU or GPU), the learning rate going
    linearly from ``lr_start`` to ``lr_end`` over their words. Each slice's random numbers
    come from ``seed`` and where the slice lies (slot, epoch, shard, first sentence). A shard
    that cannot be read (or holds ids outside the vocabulary) raises ``InputError`` naming
    it, or, with ``config.skip_bad_shards``, is skipped with a warning and named in
    ``skipped``."""
    skipped = [] if skipped is None else skipped
    bad: set[str] = set(skipped)
    started = time.perf_counter()
    total = max(sum(s.words for s in slices), 1)
    done = 0
    counters = np.zeros(5)
    opened: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for part in slices:
        if part.shard in bad:
            continue
        try:
            if part.shard not in opened:
                shard = reader(part.shard)
                opened[part.shard] = (np.asarray(shard.ids), np.asarray(shard.offsets))
            ids, offsets = opened[part.shard]
            lo, hi = int(offsets[part.s_lo]), int(offsets[part.s_hi])
            top = int(ids[lo:hi].max()) if hi > lo else -1  # only the words this part trains
            if top >= vocab_size:
                raise InputError(part.shard, f"token-id shard holds id {top}, outside the "
                                             f"vocabulary of {vocab_size} words")
        except InputError as exc:
            if not config.skip_bad_shards:
                raise
            logger.warning("skipping %s", exc)
            bad.add(part.shard)
            skipped.append(part.shard)
            continue
        a = lr_start + (lr_end - lr_start) * done / total
        done += part.words
        b = lr_start + (lr_end - lr_start) * done / total
        part_seed = int(np.random.SeedSequence(
            [seed, part.slot, part.epoch, part.index, part.s_lo]).generate_state(1)[0])
        counters += kernel(part, ids, offsets, a, b, part_seed)
    return TrainCounters(words_read=int(counters[cpu.WORDS_READ]),
                         words_kept=int(counters[cpu.WORDS_KEPT]),
                         examples=int(counters[cpu.EXAMPLES]), loss_sum=float(counters[3]),
                         loss_terms=int(counters[cpu.LOSS_TERMS]),
                         seconds=time.perf_counter() - started,
                         skipped=tuple(dict.fromkeys(skipped)))


def train_into(slices: Sequence[Slice], params: Params, tables: SamplingTables,
               config: TrainConfig, *, lr_start: float, lr_end: float, seed: int,
               touches: tuple[np.ndarray, np.ndarray] | None = None,
               skipped: list[str] | None = None,
               reader: Callable[[str | Path], TokenShard] = read_token_shard) -> TrainCounters:
    """:func:`train_with` the CPU kernels, updating ``params`` in place."""
    return train_with(slices, cpu_kernel(params, tables, config, touches), len(params.W_in),
                      config, lr_start=lr_start, lr_end=lr_end, seed=seed, skipped=skipped,
                      reader=reader)


def train_slices(slices: Sequence[Slice], params: Params, tables: SamplingTables,
                 config: TrainConfig, *, lr_start: float, lr_end: float,
                 seed: int) -> tuple[Params, TrainCounters]:
    """:func:`train_into` a copy of ``params``; the new parameters and the counters."""
    out = params.copy()
    counters = train_into(slices, out, tables, config, lr_start=lr_start, lr_end=lr_end,
                          seed=seed)
    logger.info("trained %d words (%d kept) in %.1f s: %.0f words/s, loss %.4f",
                counters.words_read, counters.words_kept, counters.seconds,
                counters.words_per_second, counters.loss)
    return out, counters


def train_shards(shards: Sequence[str | Path], params: Params, tables: SamplingTables,
                 config: TrainConfig, *, lr_start: float, lr_end: float, seed: int,
                 epochs: int = 1) -> tuple[Params, TrainCounters]:
    """Train ``epochs`` passes over ``shards`` with the learning rate going linearly from
    ``lr_start`` to ``lr_end`` over all their words; return new parameters and counters."""
    slices = stream_slices(shards, epochs, 0, np.iinfo(np.int64).max)
    return train_slices(slices, params, tables, config, lr_start=lr_start, lr_end=lr_end,
                        seed=seed)


# ------------------------------------------------------------------ the resident trainer


@functools.lru_cache(maxsize=4)
def _tables_for(model_dir: str, stamp: tuple[int, int]) -> tuple[SamplingTables, np.ndarray]:
    from dw2v.vocab import load as load_vocab

    vocab = load_vocab(model_dir)
    return SamplingTables.from_vocab(vocab), vocab.counts


def _vocab_stamp(model_dir: str) -> tuple[int, int]:
    from dw2v.vocab import VOCAB_FILE

    info = (Path(model_dir) / VOCAB_FILE).stat()
    return info.st_mtime_ns, info.st_size


def sampling_tables(model_dir: str) -> SamplingTables:
    """The kernels' tables of the vocabulary in ``model_dir``, built once per worker process
    (so the workers build them side by side); keyed by the file's time and size, so a
    directory trained again gets new ones."""
    return _tables_for(model_dir, _vocab_stamp(model_dir))[0]


def word_counts(model_dir: str) -> np.ndarray:
    """The vocabulary's counts by row (cached with the tables)."""
    return _tables_for(model_dir, _vocab_stamp(model_dir))[1]


def start_params(vocab_size: int, dim: int, seed: int, start: str | None = None,
                 base_dir: str | None = None) -> Params:
    """Where a trainer starts: a checkpoint (``start``), or fresh parameters (the same on every
    worker: they come from the seed), a base model's rows first when continuing one (its output
    vectors when it saved them; zeros otherwise)."""
    if start is not None:
        return load_params(start)
    params = init_params(vocab_size, dim, seed)
    if base_dir is not None:
        from dw2v.embeddings import OUTPUT_VECTORS, VECTORS, read_matrix

        base = Path(base_dir)
        W_in = read_matrix(base / VECTORS)
        params.W_in[:len(W_in)] = W_in
        if (base / OUTPUT_VECTORS).exists():
            params.W_out[:len(W_in)] = read_matrix(base / OUTPUT_VECTORS)
    return params


class HostReplica:
    """A trainer's parameters in host memory, trained by the Numba kernels: the replica, the
    base its peers agree on (with peers), the touches of the round, and each row's touches
    since it was last averaged (the weights of averaging). :class:`dw2v.gpu_train.
    DeviceReplica` is the same on a GPU; the trainer and the exchange see only these methods,
    so CPU and GPU workers average with each other."""

    device = "cpu"

    def __init__(self, params: Params, peers: int, tables: SamplingTables,
                 config: TrainConfig) -> None:
        self.params, self.peers, self.tables, self.config = params, peers, tables, config
        vocab = len(params.W_in)
        self.base = params.copy() if peers > 1 else None
        self.touches = (np.zeros(vocab, np.int64), np.zeros(vocab, np.int64))
        self.unsynced = ((np.zeros(vocab, np.int64), np.zeros(vocab, np.int64))
                         if peers > 1 else None)

    @property
    def vocab_size(self) -> int:
        return len(self.params.W_in)

    def train(self, slices: Sequence[Slice], *, lr_start: float, lr_end: float, seed: int,
              skipped: list[str] | None,
              reader: Callable[[str | Path], TokenShard]) -> TrainCounters:
        """One round's slices (the touches counted afresh)."""
        for t in self.touches:
            t[:] = 0
        return train_into(slices, self.params, self.tables, self.config, lr_start=lr_start,
                          lr_end=lr_end, seed=seed, touches=self.touches, skipped=skipped,
                          reader=reader)

    def offer(self, number: int, select: np.ndarray | None) -> list[list[RowUpdate]]:
        """Both matrices' offers (``merge.offer``: by owner) of the rows touched since they
        were last averaged (only those in ``select`` when given); their touches go with
        them."""
        assert self.base is not None and self.unsynced is not None
        for pending, touches in zip(self.unsynced, self.touches):
            pending += touches
        updates = [offer(self.params.W_in, self.base.W_in, self.unsynced[0], self.peers,
                         number, "input ", select),
                   offer(self.params.W_out, self.base.W_out, self.unsynced[1], self.peers,
                         number, "output ", select)]
        for pending, parts in zip(self.unsynced, updates):
            for part in parts:
                pending[part.ids] = 0
        return updates

    def settle(self, averaged: Sequence[Sequence[RowUpdate]]) -> None:
        """Each matrix's rows of the group's average (the owners' parts) become the agreed
        value in the replica and its base."""
        assert self.base is not None
        for matrix, agreed, update in zip((self.params.W_in, self.params.W_out),
                                          (self.base.W_in, self.base.W_out), averaged):
            settle(matrix, agreed, update)

    def trade(self, own: Sequence[Sequence[RowUpdate]],
              averaged: Sequence[Sequence[RowUpdate]]) -> None:
        """An exchange settled a round late: each of its rows trades this worker's own
        offered change for the average (its change since is kept)."""
        assert self.base is not None
        for matrix, agreed, mine, update in zip((self.params.W_in, self.params.W_out),
                                                (self.base.W_in, self.base.W_out), own,
                                                averaged):
            for part in mine:
                add_rows(matrix, part.ids, part.delta, np.float32(-1.0))
            for part in update:
                add_rows(matrix, part.ids, part.delta, np.float32(1.0))
                add_rows(agreed, part.ids, part.delta, np.float32(1.0))

    def check_finite(self, number: int) -> int:
        """Alone: stop if a row touched this round is NaN or inf; the rows touched."""
        rows = 0
        for name, matrix, touches in (("input ", self.params.W_in, self.touches[0]),
                                      ("output ", self.params.W_out, self.touches[1])):
            rows += int(np.count_nonzero(touches))
            bad = nonfinite_rows(matrix, touches)
            if bad:
                raise diverged(bad, name, number)
        return rows

    def owned(self, rank: int) -> Params:
        """Copies of the rows owner ``rank`` holds (for its checkpoint part)."""
        return Params(owned(self.params.W_in, rank, self.peers).copy(),
                      owned(self.params.W_out, rank, self.peers).copy())


class Replica(Protocol):
    """What a trainer needs of its parameters, wherever they live (:class:`HostReplica`,
    ``dw2v.gpu_train.DeviceReplica``)."""

    device: str

    @property
    def vocab_size(self) -> int: ...

    def train(self, slices: Sequence[Slice], *, lr_start: float, lr_end: float, seed: int,
              skipped: list[str] | None,
              reader: Callable[[str | Path], TokenShard]) -> TrainCounters: ...

    def offer(self, number: int, select: np.ndarray | None) -> list[list[RowUpdate]]: ...

    def settle(self, averaged: Sequence[Sequence[RowUpdate]]) -> None: ...

    def trade(self, own: Sequence[Sequence[RowUpdate]],
              averaged: Sequence[Sequence[RowUpdate]]) -> None: ...

    def check_finite(self, number: int) -> int: ...

    def owned(self, rank: int) -> Params: ...


def make_replica(device: str, params: Params, peers: int, tables: SamplingTables,
                 config: TrainConfig) -> Replica:
    """The replica for ``device`` ("cpu" or "gpu", as ``dw2v.devices.choose`` decided)."""
    if device == "gpu":
        from dw2v.gpu_train import DeviceReplica

        return DeviceReplica(params, peers, tables, config)
    return HostReplica(params, peers, tables, config)


@dataclass(frozen=True)
class TrainerSpec:
    """What one resident trainer needs for the run (the driver makes one per worker)."""

    job: str
    rank: int
    addresses: tuple[str, ...]
    #: The run's directory (the staging directory): vocabulary, token-id shards, checkpoints.
    model_dir: str
    #: Each slot's token-id shards (paths) and their planned tokens.
    slots: tuple[tuple[str, ...], ...]
    slot_sizes: tuple[tuple[int, ...], ...]
    plan: TrainPlan
    config: TrainConfig
    #: The first round of ``plan`` to train (a run resumed on as many workers goes on in it).
    start_round: int = 0
    #: A checkpoint directory to start from, else fresh parameters (or ``base_dir``'s).
    start: str | None = None
    base_dir: str | None = None
    checkpoint_every: float = 120.0
    exchange_timeout: float = 120.0
    #: The row schedule (``plan.hot_rows``): the most frequent ``hot_rows`` rows are
    #: averaged every round, the others every ``cold_every`` rounds (in turn: row i in the
    #: rounds where i % cold_every == round % cold_every), all of them before a checkpoint
    #: and at the end.
    hot_rows: int = 0
    cold_every: int = 1
    #: Seconds between the trainer's reports of its rounds to the driver.
    report_every: float = 0.5
    #: Where this trainer's replica lives: "cpu" or "gpu" (``dw2v.devices.choose`` on its
    #: worker, before the launch).
    device: str = "cpu"

    @property
    def topic(self) -> str:
        return f"dw2v-{self.job}"


class Stopped(Exception):
    """The driver let go of the trainer's task (its run ended or was interrupted)."""


class _Background:
    """One checkpoint part written at a time, beside training; its error raised on the next
    call (so a full disk stops the run at once, with the previous checkpoint intact)."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def submit(self, work: Callable[[], None]) -> None:
        self.wait()
        self.thread = threading.Thread(target=self._run, args=(work,), daemon=True,
                                       name="dw2v-checkpoint")
        self.thread.start()

    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the trainer's thread
            self.error = exc

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error


class _Reporter:
    """The trainer's rounds and checkpoint parts, sent to the driver as Dask events (through
    the scheduler, batched and without waiting: nothing of a round waits for it)."""

    def __init__(self, worker: Any, spec: TrainerSpec) -> None:
        self.worker, self.topic, self.rank = worker, spec.topic, spec.rank
        self.every = spec.report_every
        self.pending: list[dict[str, Any]] = []
        self.sent = time.monotonic()

    def round(self, record: dict[str, Any]) -> None:
        self.pending.append(record)
        if time.monotonic() - self.sent >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.worker.log_event(self.topic, {"kind": "rounds", "rank": self.rank,
                                               "records": self.pending})
            self.pending = []
        self.sent = time.monotonic()

    def ready(self) -> None:
        """The trainer's kernel is compiled: the driver's clock for the ETA starts."""
        self.worker.log_event(self.topic, {"kind": "ready", "rank": self.rank})

    def part(self, number: int) -> None:
        self.worker.log_event(self.topic, {"kind": "part", "rank": self.rank,
                                           "round": number})


def _cancelled(worker: Any, key: Any) -> bool:
    task = worker.state.tasks.get(key)
    return task is None or task.state == "cancelled"


def worker_threads(worker: Any) -> int:
    """The threads a Dask worker runs tasks in (``--nthreads``, ``threads_per_worker``)."""
    return max(int(worker.state.nthreads), 1)


class Trainer:
    """One worker's side of a run: its replica of both matrices (and, with peers, the base
    they agree on), its stream, its exchange group; rounds until its plan ends."""

    def __init__(self, spec: TrainerSpec, worker: Any) -> None:
        self.spec, self.worker = spec, worker
        # the kernel's threads: the ones asked for, else the ones this worker has
        self.config = (spec.config if spec.config.threads is not None else
                       dataclasses.replace(spec.config, threads=worker_threads(worker)))
        self.key = worker.get_current_task()
        tables = sampling_tables(spec.model_dir)
        self.size = len(spec.addresses)
        params = start_params(len(tables.keep_prob), self.config.vector_size,
                              self.config.seed, spec.start, spec.base_dir)
        self.replica = make_replica(spec.device, params, self.size, tables, self.config)
        # the next exchange averages every row (rank 0 asked for a checkpoint after it)
        self.full_next = spec.checkpoint_every == 0
        self.hot: np.ndarray | None = None  # the rows averaged every round
        self.pool: ThreadPoolExecutor | None = None  # the overlapped exchange's thread
        self.in_flight: tuple[Future[Any], list[list[RowUpdate]]] | None = None
        self.sent = (0, 0)  # the group's bytes sent and received so far
        self.skipped: list[str] = []
        self.shards: dict[str, TokenShard] = {}
        self.reporter = _Reporter(worker, spec)
        self.writer = _Background()
        self.records: list[dict[str, Any]] = []
        self.group: Any = None

    def _open(self, path: str | Path) -> TokenShard:
        key = str(path)
        if key not in self.shards:
            self.shards[key] = read_token_shard(path)
        return self.shards[key]

    def _slices(self, round_index: int) -> list[Slice]:
        spec, skipped = self.spec, self.skipped if self.config.skip_bad_shards else None
        out: list[Slice] = []
        for piece in spec.plan.round_pieces(spec.rank, round_index):
            out += stream_slices(spec.slots[piece.slot], self.config.epochs, piece.lo, piece.hi,
                                 spec.slot_sizes[piece.slot], skipped, slot=piece.slot,
                                 reader=self._open)
        return out

    def run(self) -> dict[str, Any]:
        from dw2v.exchange import Group

        spec = self.spec
        try:
            self._warm_up()
            self.reporter.ready()
            if self.size > 1:
                self.group = Group.join(spec.job, spec.addresses, spec.exchange_timeout)
            last_checkpoint = time.monotonic()
            rounds = spec.plan.rounds
            for r in range(spec.start_round, rounds):
                if _cancelled(self.worker, self.key):
                    raise Stopped(f"trainer {spec.rank} of job {spec.job}: released")
                final = r == rounds - 1
                due = final or time.monotonic() - last_checkpoint >= spec.checkpoint_every
                due = self._round(r, due, final)
                if due:
                    self._checkpoint(spec.plan.round_offset + r + 1, wait=final)
                    last_checkpoint = time.monotonic()
            self.reporter.flush()
            return {"rank": spec.rank, "records": self.records}
        finally:
            self.reporter.flush()
            if self.group is not None:
                self.group.close()
            if self.pool is not None:
                self.pool.shutdown(wait=False, cancel_futures=True)

    def _warm_up(self) -> None:
        """Compile the training kernel (or load it from Numba's cache) before the first round,
        so that the round's time and the driver's ETA do not carry the compilation: one call
        on an empty part of this trainer's first shard, which trains no word; with peers, the
        exchange's kernels too (``merge.warm_up``)."""
        first = next(iter(self._slices(self.spec.start_round)), None)
        if first is None:
            return
        started = time.perf_counter()
        empty = dataclasses.replace(first, s_hi=first.s_lo, words=0)
        self.replica.train([empty], lr_start=0.0, lr_end=0.0, seed=self.config.seed,
                           skipped=None, reader=self._open)
        if self.size > 1:
            warm_up(self.config.vector_size)
        logger.debug("trainer %d: kernel ready in %.2f s", self.spec.rank,
                     time.perf_counter() - started)

    def _select(self, number: int) -> np.ndarray | None:
        """The rows this round averages (a boolean mask; None: all of them)."""
        spec = self.spec
        if spec.cold_every <= 1:
            return None
        if self.hot is None:
            counts = word_counts(spec.model_dir)
            self.hot = np.zeros(len(counts), bool)
            self.hot[np.argsort(-counts, kind="stable")[:spec.hot_rows]] = True
        mask = self.hot.copy()
        mask[number % spec.cold_every::spec.cold_every] = True
        return mask

    def _round(self, r: int, due: bool, final: bool) -> bool:
        """Train round ``r`` of the plan, exchange the rows it averages; whether to
        checkpoint after it. With peers, rank 0 decides a checkpoint (``due``) and every peer
        hears it with the exchange; the next round then averages every row, so that the
        replicas agree, and the checkpoint follows it."""
        spec, config = self.spec, self.config
        number = spec.plan.round_offset + r
        started = time.perf_counter()
        lr_start, lr_end, scale = spec.plan.learning_rates(config, r)
        skipped_before = len(self.skipped)
        counters = self.replica.train(self._slices(r), lr_start=lr_start, lr_end=lr_end,
                                      seed=config.seed,
                                      skipped=self.skipped if config.skip_bad_shards else None,
                                      reader=self._open)
        trained = time.perf_counter()
        rows, steps = 0, {}
        sent, received = self.sent
        if self.group is not None:
            full = final or self.full_next
            rows, steps = self._exchange(number, full, due and not full)
            due = full
        else:
            rows = self.replica.check_finite(number)
        done = time.perf_counter()
        if self.group is not None:
            self.sent = (self.group.bytes_sent, self.group.bytes_received)
        record = {"round": number, "rank": spec.rank, "worker": self.worker.address,
                  "words": counters.words_read, "words_kept": counters.words_kept,
                  "examples": counters.examples, "loss_sum": counters.loss_sum,
                  "loss_terms": counters.loss_terms, "seconds": done - started,
                  "seconds_training": trained - started, "seconds_exchange": done - trained,
                  "bytes_sent": self.sent[0] - sent, "bytes_received": self.sent[1] - received,
                  "rows": rows, "lr_start": lr_start, "lr_end": lr_end, "lr_scale": scale,
                  "threads": config.threads if spec.device == "cpu" else 0,
                  "skipped": self.skipped[skipped_before:], "steps": steps}
        self.records.append(record)
        self.reporter.round(record)
        return due

    def _exchange(self, number: int, full: bool, ask: bool) -> tuple[int, dict[str, float]]:
        """Offer the rows this round averages (all of them when ``full``) and settle on the
        group's average. With ``config.overlap`` (and not ``full``) the exchange runs beside
        the next round's training and is settled after it (one round stale): the replica
        then trades its own change of those rows for the average. ``ask``: rank 0 asks for a
        checkpoint after the next round. Returns the rows offered and the steps' seconds."""
        assert self.group is not None
        group = self.group
        steps_before = dict(group.seconds)
        clock = time.perf_counter()
        self._settle_in_flight()
        waited = time.perf_counter() - clock
        clock = time.perf_counter()
        updates = self.replica.offer(number, None if full else self._select(number))
        offered = time.perf_counter() - clock
        vocab = self.replica.vocab_size
        control = {"checkpoint": ask} if self.spec.rank == 0 else None
        if self.config.overlap and not full:
            if self.pool is None:
                self.pool = ThreadPoolExecutor(1, thread_name_prefix="dw2v-exchange")
            self.in_flight = (self.pool.submit(group.average, updates, [vocab, vocab], number,
                                               control), updates)
            settled = 0.0
        else:
            averaged = group.average(updates, [vocab, vocab], number, control)
            clock = time.perf_counter()
            self.replica.settle(averaged)
            self._heard()
            settled = time.perf_counter() - clock
        steps = {k: v - steps_before[k] for k, v in group.seconds.items()}
        steps.update(offer=offered, settle=settled, wait=waited)
        return sum(len(p.ids) for parts in updates for p in parts), steps

    def _settle_in_flight(self) -> None:
        """Settle the exchange running beside this round: each row of it moves from this
        worker's own change to the average (its change since, this round's, is kept)."""
        if self.in_flight is None:
            return
        future, mine = self.in_flight
        self.in_flight = None
        self.replica.trade(mine, future.result())
        self._heard()

    def _heard(self) -> None:
        """After an exchange: whether rank 0 asked for a checkpoint (after a full round)."""
        assert self.group is not None
        self.full_next = (self.spec.checkpoint_every == 0
                          or bool(self.group.controls.get(0, {}).get("checkpoint")))

    def _checkpoint(self, number: int, wait: bool) -> None:
        """This owner's rows of checkpoint ``number``, written in the background (copied
        first: training goes on); the driver completes the checkpoint when all are in."""
        spec = self.spec
        self.writer.wait()  # one at a time; a failed write stops the run here
        rows = self.replica.owned(spec.rank)
        self.reporter.flush()  # the driver has this round's records before its part

        def write() -> None:
            try:
                write_part(spec.model_dir, number, spec.job, spec.rank, self.size, rows)
            except OSError as exc:
                raise CheckpointWriteError(f"writing the checkpoint after round {number} "
                                           f"failed ({exc}); training stopped") from None
            self.reporter.part(number)

        self.writer.submit(write)
        if wait:
            self.writer.wait()


def run_trainer(spec: TrainerSpec) -> dict[str, Any]:
    """The resident task (one per worker, for the whole run): a :class:`Trainer`'s rounds.
    Returns this trainer's per-round records; raises what stopped it."""
    from distributed import get_worker

    return Trainer(spec, get_worker()).run()
