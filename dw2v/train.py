"""The training driver: vocabulary, a plan of shards per worker, rounds, averaging, model.

Each round, every worker slot trains the next ``sync_every`` words of its stream (its shards,
epoch after epoch) from the same parameters; the results are averaged on the workers as a tree
(touched rows only, weighted by touches; see ``merge``), checkpointed atomically, and the
averaged parameters stay on the cluster as a future for the next round. Tasks are pure functions
of (parameters, slice, learning-rate range, seed), soft-pinned to their worker, so a task lost
with its worker is recomputed elsewhere. The learning rate decays with the words of all workers;
with ``scale_lr`` each of the N workers of a round trains at N times it, because the average
moves a row every worker touched by the mean of their updates, not by their sum.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import shutil
import sys
import threading
import time
import uuid
from concurrent.futures import CancelledError
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from distributed import Client, Future, get_worker, secede
from tqdm.auto import tqdm

from dw2v import __version__
from dw2v.atomic import (check_not_overlapping, check_output_dir, check_writable,
                         foreign_entries, output_lock, staging_dir, swap_into_place)
from dw2v.config import RunConfig, TrainConfig, to_dict
from dw2v.dask_cluster import client_for, run_id, show_progress
from dw2v.embeddings import MODEL_JSON, OUTPUT_VECTORS, VECTORS, Embeddings
from dw2v.embeddings import check_matrix_header, read_matrix
from dw2v.embeddings import load as load_embeddings
from dw2v.errors import (ConfigError, Dw2vError, Interrupted, NumericalError, OutputExistsError,
                         ResumableError, Terminated, TrainError)
from dw2v.merge import (CHECKPOINTS, Averaged, Partial, average_round,
                        latest_checkpoint, load_averaged, read_state, weighted_sum,
                        write_checkpoint)
from dw2v.preflight import check_run
from dw2v.prepare import MANIFEST, WORK_DIR, build_into
from dw2v.shard_train import (Params, SamplingTables, WorkerResult, init_params, stream_slices,
                              train_slices)
from dw2v.vocab import VOCAB_FILE, Vocabulary
from dw2v.vocab import load as load_vocab

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundRecord:
    """One round as ``model.json`` records it."""

    round: int
    words: int
    words_kept: int
    examples: int
    loss: float
    seconds: float
    seconds_training: float
    lr_start: float
    lr_end: float
    workers: list[str]
    skipped_shards: list[str] = field(default_factory=list)
    #: Per worker task, in the order of ``workers``: words read and training seconds.
    worker_words: list[int] = field(default_factory=list)
    worker_seconds: list[float] = field(default_factory=list)
    #: The workers' learning rates are the schedule's times this (``scale_lr``; else 1).
    lr_scale: int = 1


def plan_shards(shards: Sequence[dict[str, Any]], slots: int) -> list[list[dict[str, Any]]]:
    """Assign shards to slots, balanced by tokens (largest first onto the lightest slot);
    each slot keeps its shards in input order."""
    loads = [0] * slots
    plan: list[list[dict[str, Any]]] = [[] for _ in range(slots)]
    for shard in sorted(shards, key=lambda s: (-s["tokens"], s["index"])):
        slot = min(range(slots), key=lambda i: (loads[i], i))
        plan[slot].append(shard)
        loads[slot] += shard["tokens"]
    return [sorted(p, key=lambda s: s["index"]) for p in plan]


#: ``sync_every`` unset (auto): rounds of the longest slot's words / AUTO_ROUNDS, so that a run
#: averages about this many times whatever its size. On the development corpus four workers
#: kept 78.5 % of one worker's analogy accuracy with 4 averagings (1,000,000-word rounds), 101 %
#: with 122 (25,000 words) and 98 % with auto's 128 (23,686 words); benchmarks/RESULTS.md §3f.
AUTO_ROUNDS = 128
#: ... but rounds of at least AUTO_MIN_WORDS words (each round costs a fixed time to schedule,
#: move and average the parameters), and of at least one word per AUTO_VALUES_PER_WORD values
#: of a vector matrix (that time grows with the model: 23,400 words for 30,000 x 100) ...
AUTO_MIN_WORDS = 20_000
AUTO_VALUES_PER_WORD = 128
#: ... and at most this many: a large corpus keeps long, cheap rounds (and one worker, with
#: nothing to average, rounds of this size: they only mark checkpoints).
AUTO_MAX_WORDS = 1_000_000


def sync_period(config: TrainConfig, slot_words: Sequence[int], vocab_size: int) -> int:
    """Words each slot trains per round: ``config.sync_every``, or when unset (auto) about
    AUTO_ROUNDS averagings per run within [AUTO_MIN_WORDS, AUTO_MAX_WORDS] (see above)."""
    if config.sync_every is not None:
        return config.sync_every
    if len(slot_words) < 2:
        return AUTO_MAX_WORDS
    wanted = max(math.ceil(max(slot_words) / AUTO_ROUNDS), AUTO_MIN_WORDS,
                 math.ceil(vocab_size * config.vector_size / AUTO_VALUES_PER_WORD))
    return min(wanted, AUTO_MAX_WORDS)


def _learning_rate(config: TrainConfig, done: float, total: float) -> float:
    return config.alpha - (config.alpha - config.min_alpha) * min(done / max(total, 1), 1.0)


def _train_slot(shards: list[str], sizes: list[int], epochs: int, lo: int, hi: int,
                params: Params, model_dir: str, config: TrainConfig, lr_start: float,
                lr_end: float, seed: int) -> WorkerResult:
    """A worker's task for one round: the words ``[lo, hi)`` of its slot's stream."""
    try:
        worker = get_worker().address
    except ValueError:  # run outside a worker (tests)
        worker = ""
    skipped: list[str] | None = [] if config.skip_bad_shards else None
    slices = stream_slices(shards, epochs, lo, hi, sizes, skipped)
    return train_slices(slices, params, _sampling_tables(model_dir), config, lr_start=lr_start,
                        lr_end=lr_end, seed=seed, worker=worker, skipped=skipped)


def _average(parts: list[WorkerResult | Partial], previous: Averaged, round_index: int,
             eta: float) -> Averaged:
    """The round's average from the state the round started from (``merge.average_round``)."""
    return average_round(parts, previous.params, previous.momentum, round_index, eta)


def _checkpoint(model_dir: str, averaged: Averaged, state: dict[str, Any],
                keep_from: int) -> str:
    """Write a round's checkpoint outside the worker's thread pool (``secede``): it is mostly
    waiting on the disk, and the worker's next training task need not wait for it."""
    with contextlib.suppress(ValueError):  # ValueError: run outside a worker (tests)
        secede()
    return str(write_checkpoint(model_dir, averaged, state, keep_from=keep_from))


def _params_of(averaged: Averaged) -> Params:
    return averaged.params


def _model_of(averaged: Averaged) -> Params:
    return averaged.model()


#: Rounds train from the previous round's averaged parameters as they sit on the cluster, while
#: that round's checkpoint is written alongside; every LINEAGE_ROUNDS rounds the driver waits
#: for the checkpoint and restarts from it, so a copy lost with every worker holding it is
#: recomputed from at most this many rounds, never from the start.
LINEAGE_ROUNDS = 8


def _summary_of(averaged: Averaged) -> tuple[list[Any], list[str]]:
    """The small part of a round's result that the driver needs: counters and workers."""
    return averaged.counters, averaged.workers


#: Worker results or partial sums added by one reduction task.
SPLIT_EVERY = 8


@functools.lru_cache(maxsize=4)
def _tables_for(model_dir: str, stamp: tuple[int, int]) -> SamplingTables:
    return SamplingTables.from_vocab(load_vocab(model_dir))


def _sampling_tables(model_dir: str) -> SamplingTables:
    """The kernels' tables of the vocabulary in ``model_dir``, built once per worker process
    by its first training task (so the workers build them, and load Numba, side by side, not
    one after another); keyed by the file's time and size, so a directory trained again gets
    new ones."""
    info = (Path(model_dir) / VOCAB_FILE).stat()
    return _tables_for(model_dir, (info.st_mtime_ns, info.st_size))


def _initial(vocab_size: int, dim: int, seed: int, base_dir: str | None = None) -> Averaged:
    """The first parameters: fresh, or a base model's rows followed by fresh ones (its output
    vectors when it saved them; zeros otherwise)."""
    params = init_params(vocab_size, dim, seed)
    if base_dir is not None:
        base = Path(base_dir)
        W_in = read_matrix(base / VECTORS)
        params.W_in[:len(W_in)] = W_in
        if (base / OUTPUT_VECTORS).exists():
            params.W_out[:len(W_in)] = read_matrix(base / OUTPUT_VECTORS)
    return Averaged(params, None, 0.0)


def _base_model(path: Path) -> tuple[Vocabulary, int]:
    """The vocabulary and dimension of the model ``--init-from`` names (its vectors are read
    on a worker, by ``_initial``); warns when it has no output vectors."""
    if not (path / MODEL_JSON).exists():
        raise TrainError(f"--init-from {path}: not a trained dw2v model (no {MODEL_JSON})")
    vocab = load_vocab(path)
    rows, dim = check_matrix_header(path / VECTORS)
    if rows != len(vocab):
        raise TrainError(f"--init-from {path}: {VECTORS} has {rows} rows but the vocabulary "
                         f"has {len(vocab)} words")
    if not (path / OUTPUT_VECTORS).exists():
        logger.warning("--init-from %s: the model has no output vectors (train it with "
                       "--save-output-vectors to continue it best); they start at zero", path)
    return vocab, int(dim)


def _resume_state(target: Path, stage: Path) -> tuple[Path, dict[str, Any]]:
    path = latest_checkpoint(stage) if stage.is_dir() else None
    if path is None:
        done = " (its training finished)" if (target / MODEL_JSON).exists() else ""
        raise TrainError(f"{target}: nothing to resume{done}: no unfinished run with a "
                         f"checkpoint in {stage}; run without --resume")
    return path, read_state(path, keys=("plan", "config", "history"))


def _changed_settings(given: TrainConfig, saved: dict[str, Any]) -> list[str]:
    """The training settings given now that differ from the checkpoint's and from their
    defaults (a setting left at its default was not asked for), named as the command line
    spells them (``--dim 60``)."""
    from dw2v.config_file import CLI_FIELDS

    flags = {where[1]: "--" + dest.replace("_", "-") for dest, where in CLI_FIELDS.items()
             if where[0] == "train"}
    default = to_dict(TrainConfig())
    now = to_dict(given)
    return [f"{flags.get(k, k)} {v}" for k, v in sorted(now.items())
            if v != saved.get(k, v) and v != default[k]]


#: Model-sized float32 matrices a worker may hold at once during a round: the round's start
#: (W_in, W_out), its own trained copy, and on the worker that averages, the sums (then the
#: new average, written over them). Used to refuse a model too large before it is allocated.
MATRICES_PER_WORKER = 6


def _check_memory(client: Client, vocab_size: int, dim: int) -> None:
    """Refuse a model whose replicas cannot fit in the smallest worker's memory limit."""
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
    limits = [x for x in limits if x > 0]
    need = vocab_size * dim * 4 * MATRICES_PER_WORKER
    if limits and need > min(limits):
        raise ConfigError(
            f"--dim {dim}: training {vocab_size:,} words x {dim:,} dimensions needs about "
            f"{need / 2**30:.1f} GiB per worker ({MATRICES_PER_WORKER} float32 matrices of "
            f"{vocab_size * dim * 4 / 2**30:.2f} GiB), more than the smallest worker's memory "
            f"limit of {min(limits) / 2**30:.1f} GiB; lower --dim or the vocabulary "
            "(--min-count, --max-final-vocab), or use workers with more memory")


def _write_model(out: Path, params: Params, config: RunConfig, vocab_size: int,
                 rounds: list[RoundRecord], extra: dict[str, Any]) -> None:
    """Vectors and model.json, each written then renamed; model.json last (it marks done)."""
    def save(name: str, array: np.ndarray) -> None:
        tmp = out / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as handle:
            np.save(handle, array)
        os.replace(tmp, out / name)

    save(VECTORS, params.W_in)
    if config.train.save_output_vectors:
        save(OUTPUT_VECTORS, params.W_out)
    settings = {"ingest": to_dict(config.ingest), "vocab": to_dict(config.vocab),
                "train": to_dict(config.train)}
    meta = {"dw2v_version": __version__, "vector_size": int(params.W_in.shape[1]),
            "vocab_size": vocab_size, "settings": settings,
            "rounds": [asdict(r) for r in rounds], **extra}
    tmp = out / f".{MODEL_JSON}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, out / MODEL_JSON)


@dataclass
class _Pending:
    """A round submitted but not yet recorded."""

    round: int
    averaged: Future
    summary: Future
    lr: tuple[float, float]
    words: int
    lr_scale: int


class _Rounds:
    """The rounds of one run. Round r+1 is submitted before round r is recorded, so the
    workers go from one round to the next without waiting for the driver; each round's
    checkpoint is written beside the next round (one in flight at a time, in order)."""

    def __init__(self, client: Client, rid: str, out: Path, tc: TrainConfig,
                 shard_paths: list[list[str]], slot_sizes: list[list[int]],
                 slot_words: list[int], workers: list[str],
                 eta: float, bar: Any, records: list[RoundRecord],
                 state: dict[str, Any], rounds: int, period: int,
                 worker_timeout: float = 300.0) -> None:
        self.c, self.rid, self.out, self.tc = client, rid, out, tc
        self.period = period
        self.worker_timeout = worker_timeout
        self.shard_paths, self.slot_words, self.workers = shard_paths, slot_words, workers
        self.slot_sizes = slot_sizes
        self.eta, self.bar = eta, bar
        self.records, self.state, self.rounds = records, state, rounds
        self.total_words = sum(slot_words)
        self.anchor = state["round"]  # the checkpoint the lineage starts from
        self.checkpoint: Future | None = None
        self.checkpoint_round = -1  # the round whose checkpoint is in flight
        self.source: Future | None = None
        self.last = time.perf_counter()

    def _submit(self, r: int, source: Future) -> _Pending:
        """Submit round ``r`` from ``source`` (an ``Averaged``): every active slot trains from
        its parameters, then a tree of partial sums and one average on the workers."""
        c, tc, rid = self.c, self.tc, self.rid
        lo, hi = r * self.period, (r + 1) * self.period
        done_lo = sum(min(lo, w) for w in self.slot_words)
        done_hi = sum(min(hi, w) for w in self.slot_words)
        # the slots with words left train this round; averaging divides each one's updates by
        # their number, so (scale_lr) each trains at that many times the schedule's rate
        active = [i for i, words in enumerate(self.slot_words) if lo < words]
        scale = len(active) if tc.scale_lr else 1
        lr = (scale * _learning_rate(tc, done_lo, self.total_words),
              scale * _learning_rate(tc, done_hi, self.total_words))
        # the workers fetch the parameters alone, not the block momentum beside them
        params = c.submit(_params_of, source, key=f"dw2v-params-r{r}-{rid}")
        parts = []
        for i in active:
            seed = int(np.random.SeedSequence([tc.seed, r, i]).generate_state(1)[0])
            parts.append(c.submit(
                _train_slot, self.shard_paths[i], self.slot_sizes[i], tc.epochs, lo, hi, params,
                str(self.out), tc, *lr, seed, key=f"dw2v-train-r{r}-slot{i}-{rid}",
                workers=[self.workers[i % len(self.workers)]], allow_other_workers=True))
        depth = 0
        while len(parts) > SPLIT_EVERY:  # a tree of partial sums on the workers
            parts = [c.submit(weighted_sum, parts[i:i + SPLIT_EVERY],
                              key=f"dw2v-sum-r{r}-l{depth}-{i // SPLIT_EVERY}-{rid}")
                     for i in range(0, len(parts), SPLIT_EVERY)]
            depth += 1
        averaged = c.submit(_average, parts, source, r, self.eta,
                            key=f"dw2v-average-r{r}-{rid}")
        # first in line where it runs (priority): the driver waits for it before it submits
        # the round after next
        summary = c.submit(_summary_of, averaged, key=f"dw2v-summary-r{r}-{rid}", priority=1)
        return _Pending(r, averaged, summary, lr, done_hi - done_lo, scale)

    def wait(self, future: Future, round_index: int, fetch_timeout: float | None = 5.0) -> Any:
        """``future.result()``, but stop with a clear error when the cluster has had no
        workers for ``worker_timeout`` seconds (Dask itself would wait for ever). Checks
        ``done()`` rather than waiting with timeouts: a caught exception's traceback would keep
        this frame's futures, and so their data on the workers, alive until a garbage
        collection. Only the fetch of a done result has a timeout (``fetch_timeout`` seconds;
        None: none), for the rare result lost with its workers while it is fetched, which Dask
        recomputes: it is then waited for again, under the same ``worker_timeout``. The wait
        wakes on the future's done-callback, not a poll: with short rounds, a poll's delay
        held up the next round's submission (a 50 ms poll: 10 % of 20,000-word rounds waited
        over 100 ms for the next one)."""
        alone_since: float | None = None
        checked = time.monotonic()
        finished = threading.Event()
        future.add_done_callback(lambda _: finished.set())
        while True:
            while not future.done():
                # the done-callback wakes this at once; a future lost with its workers fires it
                # without being done (Dask recomputes it), so then this polls
                if finished.is_set():
                    time.sleep(0.05)
                else:
                    finished.wait(1.0)
                now = time.monotonic()
                if now - checked < 1.0:
                    continue
                checked = now
                if self.c.nthreads():
                    alone_since = None
                elif alone_since is None:
                    alone_since = now
                    logger.warning("round %d: the cluster has no workers; waiting up to %.0f s "
                                   "for some", round_index + 1, self.worker_timeout)
                elif now - alone_since >= self.worker_timeout:
                    raise ResumableError(f"round {round_index + 1} of {self.rounds}: no "
                                         f"workers for {now - alone_since:.0f} s; training "
                                         "stopped", "start workers, then")
            try:
                return future.result(timeout=fetch_timeout)
            except CancelledError:
                raise ResumableError(f"round {round_index + 1} of {self.rounds}: its data was "
                                     "lost with the workers that held it; training stopped",
                                     "check the workers, then") from None
            except TimeoutError:
                continue  # lost while fetched (Dask recomputes it), or slow: wait again

    def _written(self) -> str:
        """Wait for the checkpoint in flight and return its path; a failed write (a full
        disk, say) stops training with the previous checkpoint named, which it left intact."""
        assert self.checkpoint is not None
        try:
            return self.wait(self.checkpoint, self.checkpoint_round)
        except OSError as exc:
            raise ResumableError(f"writing the checkpoint after round "
                                 f"{self.checkpoint_round + 1} failed ({exc}); training "
                                 "stopped", "free space, then") from None

    def _record(self, p: _Pending) -> None:
        """Wait for a round's counters, record it, and submit its checkpoint."""
        counters, ran_on = self.wait(p.summary, p.round)
        now = time.perf_counter()
        terms = sum(x.loss_terms for x in counters)
        record = RoundRecord(
            round=p.round, words=sum(x.words_read for x in counters),
            words_kept=sum(x.words_kept for x in counters),
            examples=sum(x.examples for x in counters),
            loss=sum(x.loss_sum for x in counters) / terms if terms else float("nan"),
            seconds=now - self.last, seconds_training=max(x.seconds for x in counters),
            lr_start=p.lr[0], lr_end=p.lr[1], workers=list(ran_on),
            skipped_shards=sorted({path for x in counters for path in x.skipped}),
            worker_words=[x.words_read for x in counters],
            worker_seconds=[x.seconds for x in counters], lr_scale=p.lr_scale)
        if record.skipped_shards:
            logger.warning("round %d: skipped unreadable token-id shards: %s", p.round,
                           ", ".join(record.skipped_shards))
        self.last = now
        self.records.append(record)
        self.state = dict(self.state, round=p.round + 1,
                          history=[asdict(x) for x in self.records])
        if self.checkpoint is not None:  # one in flight at a time, in round order
            self._written()
        self.checkpoint = self.c.submit(_checkpoint, str(self.out), p.averaged, self.state,
                                        self.anchor, key=f"dw2v-checkpoint-r{p.round}-{self.rid}")
        self.checkpoint_round = p.round
        self.bar.update(p.words)
        self.bar.set_postfix(loss=f"{record.loss:.4f}")
        logger.info("round %d/%d: %d words, %.0f words/s, lr %.5f->%.5f, loss %.4f, "
                    "outside training %.2f s of %.2f s", p.round + 1, self.rounds, record.words,
                    record.words / max(record.seconds, 1e-9), *p.lr, record.loss,
                    record.seconds - record.seconds_training, record.seconds)

    def run(self) -> Future:
        """Run the remaining rounds from ``self.source`` (an ``Averaged``); the last state."""
        source, self.source = self.source, None
        pending: _Pending | None = None
        for r in range(self.state["round"], self.rounds):
            if pending is not None and r - self.anchor >= LINEAGE_ROUNDS:
                # restart the lineage from a checkpoint: a copy lost with every worker that
                # held it is re-read from disk, not recomputed from the first round
                self._record(pending)
                pending = None
                path = self._written()
                # drop the state the checkpoint replaces first, so that the workers free it
                # before they load the copy (not both in memory at once)
                source = None
                source = self.c.submit(load_averaged, path, key=f"dw2v-load-r{r}-{self.rid}")
                self.anchor = r
            submitted = self._submit(r, source)
            source = submitted.averaged
            if pending is not None:
                self._record(pending)
            pending, submitted = submitted, None
        if pending is not None:
            self._record(pending)
        if self.checkpoint is not None:
            self._written()
        return source


def train(inputs: Sequence[str], output: str | Path, config: RunConfig = RunConfig(), *,
          client: Client | None = None, overwrite: bool = False, resume: bool = False,
          keep_work: bool = False, progress: bool | None = None,
          init_from: str | Path | None = None) -> Embeddings:
    """Train word2vec on ``inputs`` and write the model to ``output``; return its vectors.

    The run builds the model in a staging directory beside ``output`` (:func:`staging_dir`;
    its checkpoints too) and swaps it into place only when every file is written and synced,
    so a run that fails, diverges or is interrupted leaves an existing ``output`` exactly as it
    was. ``overwrite`` lets the run replace an ``output`` that holds only dw2v output;
    ``resume`` continues the staged run from its last checkpoint.

    ``init_from``: continue training a model (a model directory): its vocabulary is extended
    with the new corpus's words, its vectors are kept, new words' rows start as usual. It may
    be ``output`` itself (the old model is read first and replaced only at the end)."""
    target = Path(output).absolute()
    stage = staging_dir(target)
    tc = config.train
    if tc.device == "gpu":
        raise ConfigError("--device gpu: the GPU kernels are not part of this version; "
                          "use --device cpu (or auto)")
    base = None
    base_dir = None if init_from is None or resume else Path(init_from).absolute()
    if base_dir is not None:
        base, base_dim = _base_model(base_dir)
        if base_dim != tc.vector_size:
            logger.info("--init-from: using the base model's %d dimensions", base_dim)
            tc = dataclasses.replace(tc, vector_size=base_dim)
            config = RunConfig(config.ingest, config.vocab, tc, config.cluster)
    # the base model may be the output: it is read first, and replaced only at the end
    based = [] if base_dir is None else [str(base_dir)]
    check_not_overlapping(target, [*inputs, *based], allow_equal=based)
    check_writable(target)
    check_run(inputs, config.cluster, client)  # resuming: no inputs, the cluster still
    with output_lock(target):
        if not resume and stage.exists():
            if not overwrite:
                kept = _safe_latest(stage)
                raise OutputExistsError(
                    f"{target}: an unfinished run of this output is in {stage}"
                    f"{f' (checkpoint {kept.name})' if kept else ''}; continue it with "
                    "--resume, or start again with --overwrite (which discards it)")
            foreign = foreign_entries(stage)  # the name is dw2v's; so must every file be
            if foreign:
                raise OutputExistsError(f"{stage}: holds files dw2v did not write: "
                                        f"{', '.join(foreign[:5])}; move them first")
            shutil.rmtree(stage)  # --overwrite: the unfinished run is discarded
        # resuming: the run it continues was checked; the output is replaced at the end only
        check_output_dir(target, overwrite or resume)
        if resume and (stage / MODEL_JSON).exists() and _safe_latest(stage) is None:
            # a run whose model was complete but not swapped in (the swap failed): finish it
            swap_into_place(stage, target)
            logger.info("swapped the finished model from %s into %s", stage, target)
            return load_embeddings(target)
        try:
            resumed = _resume_state(target, stage) if resume else None
            model = _train_staged(inputs, target, stage, config, client=client,
                                  resumed=resumed, keep_work=keep_work, progress=progress,
                                  base=base, base_dir=base_dir)
        except BaseException as exc:
            _after_failure(exc, target, stage, resume)
            raise
    return model



def _safe_latest(stage: Path) -> Path | None:
    try:
        return latest_checkpoint(stage)
    except Dw2vError:
        return None


def _after_failure(exc: BaseException, target: Path, stage: Path, resume: bool) -> None:
    """Keep the staging directory when it holds a checkpoint and resuming can help (not after
    a divergence), or a finished model; remove it otherwise; say which. The old model is never
    touched."""
    kept = _safe_latest(stage) if stage.is_dir() else None
    unchanged = f"{target} is unchanged" if target.exists() else "no model was written"
    if (stage / MODEL_JSON).exists():  # finished, but not swapped in: never delete it
        note = (f"the finished model is kept in {stage} ('dw2v train -o {target} --resume' "
                f"swaps it in); {unchanged}")
    elif resume and kept is None and isinstance(exc, Dw2vError):
        shutil.rmtree(stage, ignore_errors=True)
        return  # nothing to resume: the error says so, and nothing was touched
    elif kept is None or isinstance(exc, NumericalError):
        shutil.rmtree(stage, ignore_errors=True)
        note = (f"nothing to resume (no round had been checkpointed); {unchanged}"
                if kept is None else f"the run is discarded (resuming would diverge again); "
                                     f"{unchanged}")
    else:
        then = getattr(exc, "then", "")
        note = (f"the checkpoint after round {_checkpoint_round(kept)} is kept in {stage}: "
                f"{then + ' ' if then else ''}'dw2v train -o {target} --resume' continues "
                f"from it (--overwrite discards it); {unchanged}")
    if isinstance(exc, KeyboardInterrupt):
        how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        raise Interrupted(f"{how}; {note}", exit_code=143 if isinstance(exc, Terminated)
                          else 130) from None
    if isinstance(exc, Dw2vError):
        exc.add_note(note)


def _checkpoint_round(path: Path) -> int:
    try:
        return int(json.loads((path / "state.json").read_text())["round"])
    except (OSError, ValueError, KeyError, TypeError):
        return int(path.name.split("-")[-1])


def _train_staged(inputs: Sequence[str], target: Path, out: Path, config: RunConfig, *,
                  client: Client | None, resumed: tuple[Path, dict[str, Any]] | None,
                  keep_work: bool,
                  progress: bool | None, base: Vocabulary | None,
                  base_dir: Path | None) -> Embeddings:
    """The run itself, in the staging directory ``out``; swaps it into ``target`` at the end."""
    tc = config.train
    with client_for(config.cluster, client) as c:
        rid = run_id()
        if resumed is not None:
            checkpoint, state = resumed
            changed = _changed_settings(tc, state["config"])
            if changed:
                logger.warning("resuming with the checkpoint's training settings; not used: "
                               "%s", ", ".join(changed))
            tc = TrainConfig(**state["config"])
            config = RunConfig(config.ingest, config.vocab, tc, config.cluster)
            logger.info("resuming %s from round %d", target, state["round"])
            # parameters come from a task, so a lost copy is re-read, not recomputed
            source = c.submit(load_averaged, str(checkpoint), key=f"dw2v-load-resume-{rid}")
        else:
            out.mkdir()
            build_into(out, inputs, ingest=config.ingest, vocab=config.vocab, client=c,
                       progress=progress, base=base, output=target)
            state = None
        vocab = load_vocab(out)
        manifest = json.loads((out / WORK_DIR / MANIFEST).read_text())
        workers = sorted(c.nthreads())
        if not workers:
            raise TrainError("the cluster has no workers")
        if state is None:
            _check_memory(c, len(vocab), tc.vector_size)
            slots = len(workers)
            plan = [[s["path"] for s in slot] for slot in plan_shards(manifest["shards"], slots)]
            source = c.submit(_initial, len(vocab), tc.vector_size, tc.seed,
                              None if base_dir is None else str(base_dir),
                              key=f"dw2v-params-init-{rid}")
            state = {"round": 0, "plan": plan, "history": [], "config": to_dict(tc),
                     "init_from": None if base_dir is None else str(base_dir)}
        plan = state["plan"]
        records = [RoundRecord(**r) for r in state["history"]]
        shard_paths = [[str(out / WORK_DIR / p) for p in slot] for slot in plan]
        sizes = {s["path"]: s["tokens"] for s in manifest["shards"]}
        slot_words = [sum(sizes[p] for p in slot) * tc.epochs for slot in plan]
        total_words = sum(slot_words)
        period = state.setdefault("sync_every", sync_period(tc, slot_words, len(vocab)))
        rounds = max(math.ceil(max(slot_words) / period), 1)
        logger.info("%d rounds of %d words per worker slot%s", rounds, period,
                    " (--sync-every auto)" if tc.sync_every is None else "")
        for i, slot in enumerate(plan):
            logger.info("slot %d -> %s: %d shards, %d words x %d epochs", i,
                        workers[i % len(workers)], len(slot), slot_words[i] // tc.epochs,
                        tc.epochs)
        run_started = time.perf_counter()
        bar = tqdm(total=total_words, unit="word", unit_scale=True, desc="training",
                   disable=not show_progress(progress), file=sys.stderr)
        bar.update(sum(min(state["round"] * period, w) for w in slot_words))
        eta = tc.block_momentum if tc.block_momentum is not None else 1.0 - 1.0 / len(plan)
        slot_sizes = [[sizes[p] for p in slot] for slot in plan]
        runner = _Rounds(c, rid, out, tc, shard_paths, slot_sizes, slot_words, workers, eta, bar,
                         records, state, rounds, period, config.cluster.worker_timeout)
        runner.source, source = source, None  # held by the runner only, released as it goes
        source = runner.run()
        bar.close()
        final: Params = runner.wait(c.submit(_model_of, source, key=f"dw2v-model-{rid}"),
                                    rounds - 1, fetch_timeout=None)  # large: no time limit
        seconds_total = time.perf_counter() - run_started
    _write_model(out, final, config, len(vocab), records,
                 {"slots": len(plan), "sync_every": period, "slot_words": slot_words,
                  "total_words": total_words, "seconds": seconds_total,
                  "init_from": state.get("init_from")})
    if not keep_work:
        shutil.rmtree(out / WORK_DIR, ignore_errors=True)
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    try:
        from dw2v.report import write_report
        write_report(out)
    except Exception as exc:  # noqa: BLE001 - the model is written; the report is extra
        logger.warning("the model is written, but its report.html could not be: %s", exc)
    try:  # the run was allowed to replace the output; it must still hold only dw2v's files
        check_output_dir(target, overwrite=True)
    except Dw2vError as exc:
        raise TrainError(f"the model is complete, but {exc}") from None
    swap_into_place(out, target)
    return load_embeddings(target)
