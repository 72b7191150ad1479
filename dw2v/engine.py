"""The client's side of engine v2 (DESIGN.md): launch one resident trainer per worker, follow
their rounds, complete their checkpoints, and restart the group when a worker is lost or hangs.

Dask places and launches; then the trainers exchange rows with each other directly
(``dw2v.exchange``), and nothing the size of the model passes through the scheduler or this
client. The trainers report their rounds and written checkpoint parts as Dask events (small,
batched, never waited for by a round); this side turns them into the run's round records, the
progress bar and the log, and completes a checkpoint (its ``state.json``, then the rename)
once every owner's part is in. A trainer that fails with an exchange error names the peer it
lost; the peers that did not report, or left the cluster, are dropped, and the group starts
again from the last complete checkpoint on the workers that remain (and any that joined), the
words left re-planned over them (``plan.TrainPlan.replan``).
"""

from __future__ import annotations

import logging
import queue
import time
import uuid
from concurrent.futures import CancelledError
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from distributed import Client, Future

from dw2v.config import TrainConfig, to_dict
from dw2v.dask_cluster import restart_clock
from dw2v.devices import probe
from dw2v.errors import CheckpointWriteError, Dw2vError, ExchangeError, ResumableError, TrainError
from dw2v.exchange import register, unregister
from dw2v.merge import finish_checkpoint, latest_checkpoint
from dw2v.plan import TrainPlan
from dw2v.shard_train import Stopped, TrainerSpec, run_trainer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundRecord:
    """One round as ``model.json`` records it; the lists are per worker, in ``workers``'
    order."""

    round: int
    words: int
    words_kept: int
    examples: int
    loss: float
    #: The slowest worker's seconds for the whole round, its training, and its exchange.
    seconds: float
    seconds_training: float
    lr_start: float
    lr_end: float
    workers: list[str]
    skipped_shards: list[str] = field(default_factory=list)
    worker_words: list[int] = field(default_factory=list)
    worker_seconds: list[float] = field(default_factory=list)
    #: The workers' learning rates are the schedule's times this (``scale_lr``; else 1).
    lr_scale: int = 1
    seconds_exchange: float = 0.0
    worker_exchange_seconds: list[float] = field(default_factory=list)
    #: Bytes of rows each worker sent and received in the round's exchange, and the touched
    #: rows it offered (both matrices).
    worker_bytes_sent: list[int] = field(default_factory=list)
    worker_bytes_received: list[int] = field(default_factory=list)
    worker_rows: list[int] = field(default_factory=list)
    #: Each worker's kernel threads (0: it trained on a GPU).
    worker_threads: list[int] = field(default_factory=list)
    #: Each worker's seconds in the steps of its exchange: offering its rows, splitting them
    #: by owner, moving them (both waves, waiting for peers included), averaging, settling.
    worker_exchange_steps: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def of(cls, parts: list[dict[str, Any]]) -> RoundRecord:
        """The record of one round from each trainer's report of it."""
        parts = sorted(parts, key=lambda p: p["rank"])
        terms = sum(p["loss_terms"] for p in parts)
        return cls(
            round=parts[0]["round"], words=sum(p["words"] for p in parts),
            words_kept=sum(p["words_kept"] for p in parts),
            examples=sum(p["examples"] for p in parts),
            loss=sum(p["loss_sum"] for p in parts) / terms if terms else float("nan"),
            seconds=max(p["seconds"] for p in parts),
            seconds_training=max(p["seconds_training"] for p in parts),
            lr_start=parts[0]["lr_start"], lr_end=parts[0]["lr_end"],
            workers=[p["worker"] for p in parts],
            skipped_shards=sorted({s for p in parts for s in p["skipped"]}),
            worker_words=[p["words"] for p in parts],
            worker_seconds=[p["seconds_training"] for p in parts],
            lr_scale=parts[0]["lr_scale"],
            seconds_exchange=max(p["seconds_exchange"] for p in parts),
            worker_exchange_seconds=[p["seconds_exchange"] for p in parts],
            worker_bytes_sent=[p["bytes_sent"] for p in parts],
            worker_bytes_received=[p["bytes_received"] for p in parts],
            worker_rows=[p["rows"] for p in parts],
            worker_threads=[p.get("threads", 1) for p in parts],
            worker_exchange_steps=[p.get("steps", {}) for p in parts])


@dataclass(frozen=True)
class Restart:
    """A group restarted after a fault, as ``model.json`` records it."""

    after_round: int
    from_checkpoint: int
    lost_workers: list[str]
    words_trained_again: int
    cause: str


@dataclass(frozen=True)
class RunSetup:
    """What the engine needs for a run (from the driver, fresh or resumed)."""

    out: Path
    config: TrainConfig
    #: Each slot's token-id shards, relative to ``out``, and their planned tokens.
    slots: list[list[str]]
    slot_sizes: list[list[int]]
    plan: TrainPlan
    #: The round of ``plan`` to go on from, and the checkpoint holding the parameters there.
    start_round: int = 0
    start: Path | None = None
    base_dir: Path | None = None
    init_from: str | None = None
    checkpoint_every: float = 120.0
    exchange_timeout: float = 120.0
    worker_timeout: float = 300.0
    #: The exchange's row schedule (``TrainerSpec``).
    hot_rows: int = 0


@dataclass
class _Group:
    """One launch of the trainers: its job id, plan, workers and their tasks."""

    job: str
    plan: TrainPlan
    workers: list[str]
    futures: list[Future]
    parts: dict[int, set[int]] = field(default_factory=dict)
    reports: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)
    #: The ranks whose kernel is compiled (each trainer says so before its first round).
    ready: set[int] = field(default_factory=set)
    launched: float = field(default_factory=time.perf_counter)


class Engine:
    """Runs the rounds of one training run on the cluster; :meth:`run` returns their records."""

    def __init__(self, client: Client, setup: RunSetup, records: list[RoundRecord],
                 restarts: list[Restart], checkpoints: list[int], bar: Any) -> None:
        """``records``, ``restarts`` and ``checkpoints`` (the rounds checkpointed) hold the
        run's history so far and grow as it goes on."""
        self.c, self.setup, self.bar = client, setup, bar
        self.records, self.restarts, self.checkpoints = records, restarts, checkpoints
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.excluded: set[str] = set()
        self.completed = -1  # the newest checkpoint this run completed
        self.rounds_total = setup.plan.round_offset + setup.plan.rounds  # grows on a re-plan
        self.started = time.perf_counter()
        #: The device each worker trained on ("cpu", "gpu"), by address.
        self.devices: dict[str, str] = {}

    # ------------------------------------------------------------------ the run
    def run(self) -> list[RoundRecord]:
        setup = self.setup
        plan, start_round, start = setup.plan, setup.start_round, setup.start
        while True:
            workers = self._workers(plan.round_offset + start_round)
            if len(workers) != plan.size:
                plan, start_round = plan.replan(start_round, len(workers)), 0
                logger.info("re-planned the %s words left over %d workers",
                            f"{plan.total_words - plan.words_before:,}", len(workers))
            self.rounds_total = plan.round_offset + plan.rounds
            group = self._launch(plan, start_round, start, workers)
            try:
                fault = self._follow(group)
            finally:
                self.c.unsubscribe_topic(f"dw2v-{group.job}")
            if fault is None:
                return self.records
            lost, cause = fault
            done = len(self.records)
            checkpoint = self._latest()
            kept = checkpoint[0] if checkpoint else setup.plan.round_offset + setup.start_round
            # the rounds after the checkpoint are trained again
            again = sum(r.words for r in self.records[kept:])
            del self.records[kept:]
            self.restarts.append(Restart(after_round=done, from_checkpoint=kept,
                                         lost_workers=sorted(lost),
                                         words_trained_again=again, cause=cause))
            self.excluded |= lost
            logger.warning("%s; restarting from the checkpoint after round %d without %s "
                           "(%s words are trained again)", cause, kept, ", ".join(sorted(lost)),
                           f"{again:,}")
            self.bar.n = sum(r.words for r in self.records)
            self.bar.refresh()
            if checkpoint is not None:
                start, plan = checkpoint[1], checkpoint[2]
                start_round = kept - plan.round_offset
            else:
                start, plan, start_round = setup.start, setup.plan, setup.start_round

    def _latest(self) -> tuple[int, Path, TrainPlan] | None:
        from dw2v.merge import read_state

        path = latest_checkpoint(self.setup.out)
        if path is None:
            return None
        state = read_state(path, keys=("plan",))
        return int(state["round"]), path, TrainPlan.from_dict(state["plan"])

    def _workers(self, round_index: int,
                 pause: Callable[[], None] = lambda: time.sleep(0.5)) -> list[str]:
        """The workers to train on now (not those dropped as hung); while there are none,
        ``pause()`` again and again, for up to ``worker_timeout`` seconds."""
        since: float | None = None
        while True:
            workers = sorted(set(self.c.nthreads()) - self.excluded)
            if workers:
                return workers
            if since is None:
                since = time.monotonic()
                logger.warning("round %d: the cluster has no workers; waiting up to %.0f s "
                               "for some", round_index + 1, self.setup.worker_timeout)
            waited = time.monotonic() - since
            if waited >= self.setup.worker_timeout:
                raise ResumableError(f"round {round_index + 1} of {self.rounds_total}: no "
                                     f"workers for {waited:.0f} s; training stopped",
                                     "start workers, then")
            pause()

    def _launch(self, plan: TrainPlan, start_round: int, start: Path | None,
                workers: list[str]) -> _Group:
        setup = self.setup
        job = uuid.uuid4().hex[:12]
        devices = self._devices(workers)
        self.c.run(register, job, workers=workers)
        group = _Group(job, plan, workers, [])
        self.c.subscribe_topic(f"dw2v-{job}", lambda event: self.events.put(event[1]))
        slots = tuple(tuple(str(setup.out / p) for p in slot) for slot in setup.slots)
        sizes = tuple(tuple(s) for s in setup.slot_sizes)
        for rank, address in enumerate(workers):
            spec = TrainerSpec(
                job=job, rank=rank, addresses=tuple(workers), model_dir=str(setup.out),
                slots=slots, slot_sizes=sizes, plan=plan, config=setup.config,
                start_round=start_round, start=None if start is None else str(start),
                base_dir=None if setup.base_dir is None else str(setup.base_dir),
                checkpoint_every=setup.checkpoint_every,
                exchange_timeout=setup.exchange_timeout, hot_rows=setup.hot_rows,
                cold_every=setup.config.cold_every, device=devices[address])
            group.futures.append(self.c.submit(
                run_trainer, spec, key=f"dw2v-trainer-{job}-{rank}", workers=[address],
                allow_other_workers=False, pure=False))
        logger.info("round %d: %d trainers started (job %s)", plan.round_offset + start_round + 1,
                    len(workers), job)
        return group

    def _devices(self, workers: list[str]) -> dict[str, str]:
        """Each worker's device for ``--device`` (``dw2v.devices.probe``), kept for
        ``model.json`` and logged for the workers not seen before."""
        config = self.setup.config
        found = probe(self.c, config.device, workers, config.vector_size, config.negative)
        for address, choice in found.items():
            if config.device != "cpu" and address not in self.devices:
                logger.info("worker %s trains on the %s", address, choice["name"])
            self.devices[address] = choice["device"]
        return {w: choice["device"] for w, choice in found.items()}

    # ------------------------------------------------------------- following a group
    def _follow(self, group: _Group) -> tuple[set[str], str] | None:
        """Until the group ends: its events, and a fault. None when every trainer finished;
        else the workers to drop and what happened."""
        while True:
            self._drain(group, wait=0.2)
            failed = [f for f in group.futures if f.status == "error"]
            if failed:
                return self._fault(group)
            if all(f.status == "finished" for f in group.futures):
                results = self.c.gather(group.futures)
                for result in results:  # what the events have not brought yet
                    for record in result["records"]:
                        self._report(group, record)
                self._drain(group, wait=0)
                final = group.plan.round_offset + group.plan.rounds
                self._complete(group, final, wait_all=True)
                return None
            try:  # every worker gone: wait for some, handling what still arrives
                self._workers(len(self.records), lambda: self._drain(group, wait=0.5))
            except ResumableError:
                for future in group.futures:
                    future.cancel()
                raise

    def _drain(self, group: _Group, wait: float) -> None:
        """Handle the events that arrived (waiting up to ``wait`` seconds for the first)."""
        try:
            event = self.events.get(timeout=wait) if wait else self.events.get_nowait()
        except queue.Empty:
            return
        while True:
            if event.get("kind") == "rounds":
                for record in event["records"]:
                    self._report(group, record)
            elif event.get("kind") == "ready":
                group.ready.add(event["rank"])
                if len(group.ready) == len(group.workers):
                    logger.info("the kernels are ready on every worker, %.1f s after the "
                                "launch", time.perf_counter() - group.launched)
                    restart_clock(self.bar)
            elif event.get("kind") == "part":
                group.parts.setdefault(event["round"], set()).add(event["rank"])
                self._complete(group, event["round"])
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return

    def _report(self, group: _Group, record: dict[str, Any]) -> None:
        """One trainer's report of a round; the round is recorded once every trainer's is in."""
        number = record["round"]
        if number < len(self.records):
            return  # already recorded (the event, then the task's result)
        group.reports.setdefault(number, {})[record["rank"]] = record
        while len(group.reports.get(len(self.records), {})) == len(group.workers):
            parts = list(group.reports.pop(len(self.records)).values())
            done = RoundRecord.of(parts)
            self.records.append(done)
            self.bar.update(done.words)
            self.bar.set_postfix(loss=f"{done.loss:.4f}")
            if done.skipped_shards:
                logger.warning("round %d: skipped unreadable token-id shards: %s",
                               done.round + 1, ", ".join(done.skipped_shards))
            logger.info("round %d/%d: %d words, %.0f words/s, lr %.5f->%.5f, loss %.4f, "
                        "exchange %.1f ms of %.1f ms, %.1f MB sent per worker",
                        done.round + 1, self.rounds_total, done.words,
                        done.words / max(done.seconds, 1e-9), done.lr_start, done.lr_end,
                        done.loss, done.seconds_exchange * 1e3, done.seconds * 1e3,
                        max(done.worker_bytes_sent, default=0) / 1e6)

    def _complete(self, group: _Group, number: int, wait_all: bool = False) -> None:
        """Complete checkpoint ``number`` when every owner's part and every round before it
        are in."""
        if number <= self.completed:
            return  # completed already (from its parts' events)
        have = group.parts.get(number, set())
        if not wait_all and (len(have) < len(group.workers) or len(self.records) < number):
            return
        if len(self.records) < number:
            raise TrainError(f"the trainers finished, but only {len(self.records)} of "
                             f"{number} rounds were reported")
        plan = group.plan
        state = {"round": number, "plan": plan.to_dict(), "slots": self.setup.slots,
                 "slot_sizes": self.setup.slot_sizes, "config": to_dict(self.setup.config),
                 "history": [asdict(r) for r in self.records[:number]],
                 "restarts": [asdict(r) for r in self.restarts],
                 "checkpoints": [*self.checkpoints, number],
                 "sync_every": plan.period, "init_from": self.setup.init_from}
        try:
            finish_checkpoint(self.setup.out, number, group.job, len(group.workers), state)
        except OSError as exc:
            raise ResumableError(f"writing the checkpoint after round {number} failed "
                                 f"({exc}); training stopped", "free space, then") from None
        group.parts.pop(number, None)
        self.completed = number
        self.checkpoints.append(number)
        logger.debug("checkpoint after round %d complete", number)

    def _fault(self, group: _Group) -> tuple[set[str], str]:
        """A trainer failed: wait (up to the exchange timeout) for the others to end too, then
        say which workers to drop, or raise what cannot be helped by restarting."""
        deadline = time.monotonic() + self.setup.exchange_timeout + 10
        while True:
            errors = {rank: f.exception() for rank, f in enumerate(group.futures)
                      if f.status == "error"}
            accused = ({e.peer for e in errors.values() if isinstance(e, ExchangeError)}
                       | (set(group.workers) - set(self.c.nthreads())))
            waiting = [rank for rank, f in enumerate(group.futures)
                       if f.status not in ("error", "finished", "cancelled")
                       and group.workers[rank] not in accused]
            if not waiting or time.monotonic() >= deadline:
                break
            self._drain(group, wait=0.2)
        for future in group.futures:
            future.cancel()
        with_cause = [e for e in errors.values()
                      if not isinstance(e, (ExchangeError, Stopped, CancelledError))]
        if with_cause:  # diverged, a bad shard, a full disk: restarting would not help
            exc = with_cause[0]
            if isinstance(exc, CheckpointWriteError):
                raise ResumableError(str(exc), "free space, then") from None
            if isinstance(exc, Dw2vError):
                raise exc
            raise TrainError(f"a trainer failed: {type(exc).__name__}: {exc}") from exc
        reporters = {group.workers[rank] for rank in errors}
        named = {e.peer for e in errors.values() if isinstance(e, ExchangeError) and e.peer}
        gone = set(group.workers) - set(self.c.nthreads())
        lost = (named - reporters) | gone
        healthy = [w for w in group.workers if w not in lost and w in self.c.nthreads()]
        if healthy:
            try:
                self.c.run(unregister, group.job, workers=healthy)
            except Exception as exc:  # noqa: BLE001 - only tidying: the job's handler
                logger.debug("unregister %s: %s", group.job, exc)
        if not lost:
            first = next(iter(errors.values()))
            raise TrainError(f"the trainers stopped: {first}")
        # the cause names a dropped worker: a healthy peer that saw its own connection to
        # another reporter close (that reporter gave up on the lost one first) is not it
        cause = next((str(e) for e in errors.values()
                      if isinstance(e, ExchangeError) and e.peer in lost),
                     f"workers {', '.join(sorted(lost))} left the cluster")
        return lost, cause


def restarts_of(state: dict[str, Any]) -> list[Restart]:
    return [Restart(**r) for r in state.get("restarts", [])]


def records_of(state: dict[str, Any]) -> list[RoundRecord]:
    return [RoundRecord(**r) for r in state.get("history", [])]

