"""The training driver: vocabulary, a plan of shards per worker, rounds, averaging, model.

Each round, every worker slot trains the next ``sync_every`` words of its stream (its shards,
epoch after epoch) from the same parameters; the results are averaged on the workers as a tree
(touched rows only, weighted by touches; see ``merge``), checkpointed atomically, and the
averaged parameters stay on the cluster as a future for the next round. Tasks are pure functions
of (parameters, slice, learning-rate range, seed), soft-pinned to their worker, so a task lost
with its worker is recomputed elsewhere. The learning rate decays with the words of all workers.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from distributed import Client, get_worker, secede
from tqdm.auto import tqdm

from dw2v import __version__
from dw2v.atomic import check_output_dir
from dw2v.config import ClusterConfig, IngestConfig, TrainConfig, VocabConfig, to_dict
from dw2v.dask_cluster import client_for, run_id, show_progress
from dw2v.embeddings import MODEL_JSON, OUTPUT_VECTORS, VECTORS, Embeddings
from dw2v.embeddings import load as load_embeddings
from dw2v.errors import Dw2vError
from dw2v.merge import (CHECKPOINTS, Averaged, average_round, latest_checkpoint, load_averaged,
                        weighted_sum, write_checkpoint)
from dw2v.prepare import MANIFEST, WORK_DIR, build_vocab
from dw2v.shard_train import (Params, SamplingTables, WorkerResult, init_params, stream_slices,
                              train_slices)
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


def _learning_rate(config: TrainConfig, done: float, total: float) -> float:
    return config.alpha - (config.alpha - config.min_alpha) * min(done / max(total, 1), 1.0)


def _train_slot(shards: list[str], epochs: int, lo: int, hi: int, params: Params,
                tables: SamplingTables, config: TrainConfig, lr_start: float, lr_end: float,
                seed: int) -> WorkerResult:
    """A worker's task for one round: the words ``[lo, hi)`` of its slot's stream."""
    try:
        worker = get_worker().address
    except ValueError:  # run outside a worker (tests)
        worker = ""
    return train_slices(stream_slices(shards, epochs, lo, hi), params, tables, config,
                        lr_start=lr_start, lr_end=lr_end, seed=seed, worker=worker)


def _checkpoint(model_dir: str, averaged: Averaged, state: dict[str, Any],
                keep_from: int) -> str:
    """Write a round's checkpoint outside the worker's thread pool (``secede``): it is mostly
    waiting on the disk, and the worker's next training task need not wait for it."""
    try:
        secede()
    except ValueError:  # run outside a worker (tests)
        pass
    return str(write_checkpoint(model_dir, averaged, state, keep_from=keep_from))


def _params_of(averaged: Averaged) -> Params:
    return averaged.params


def _momentum_of(averaged: Averaged) -> Params | None:
    return averaged.momentum


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


def _initial(vocab_size: int, dim: int, seed: int) -> Averaged:
    return Averaged(init_params(vocab_size, dim, seed), None, 0.0)


class TrainError(Dw2vError):
    """Training cannot start or continue (names the cause)."""


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a training run."""

    ingest: IngestConfig = IngestConfig()
    vocab: VocabConfig = VocabConfig()
    train: TrainConfig = TrainConfig()
    cluster: ClusterConfig = ClusterConfig()


def _resume_state(out: Path) -> tuple[Path, dict[str, Any]]:
    path = latest_checkpoint(out)
    if path is None:
        raise TrainError(f"{out}: nothing to resume (no checkpoint); run without --resume")
    return path, json.loads((path / "state.json").read_text())


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


def train(inputs: Sequence[str], output: str | Path, config: RunConfig = RunConfig(), *,
          client: Client | None = None, overwrite: bool = False, resume: bool = False,
          keep_work: bool = False, progress: bool | None = None) -> Embeddings:
    """Train word2vec on ``inputs`` and write the model to ``output``; return its vectors."""
    out = Path(output).absolute()
    tc = config.train
    if tc.device == "gpu":
        raise TrainError("--device gpu: the GPU kernels are not part of this version; "
                         "use --device cpu")
    if not resume and not overwrite and (out / CHECKPOINTS).exists():
        raise TrainError(f"{out}: holds an unfinished run; continue it with --resume, or "
                         "replace it with --overwrite")
    with client_for(config.cluster, client) as c:
        rid = run_id()
        if resume:
            checkpoint, state = _resume_state(out)
            if state["config"] != to_dict(tc):
                logger.warning("resuming with the checkpoint's training settings, not the "
                               "ones given now")
            tc = TrainConfig(**state["config"])
            config = RunConfig(config.ingest, config.vocab, tc, config.cluster)
            logger.info("resuming %s from round %d", out, state["round"])
            # parameters come from a task, so a lost copy is re-read, not recomputed
            source = c.submit(load_averaged, str(checkpoint), key=f"dw2v-load-resume-{rid}")
        else:
            check_output_dir(out, overwrite)
            build_vocab(inputs, out, ingest=config.ingest, vocab=config.vocab, client=c,
                        overwrite=overwrite, progress=progress)
            state = None
        vocab = load_vocab(out)
        manifest = json.loads((out / WORK_DIR / MANIFEST).read_text())
        workers = sorted(c.nthreads())
        if not workers:
            raise TrainError("the cluster has no workers")
        if state is None:
            slots = len(workers)
            plan = [[s["path"] for s in slot] for slot in plan_shards(manifest["shards"], slots)]
            source = c.submit(_initial, len(vocab), tc.vector_size, tc.seed,
                              key=f"dw2v-params-init-{rid}")
            state = {"round": 0, "plan": plan, "history": [], "config": to_dict(tc)}
        plan = state["plan"]
        records = [RoundRecord(**r) for r in state["history"]]
        shard_paths = [[str(out / WORK_DIR / p) for p in slot] for slot in plan]
        sizes = {s["path"]: s["tokens"] for s in manifest["shards"]}
        slot_words = [sum(sizes[p] for p in slot) * tc.epochs for slot in plan]
        total_words = sum(slot_words)
        rounds = max(math.ceil(max(slot_words) / tc.sync_every), 1)
        for i, slot in enumerate(plan):
            logger.info("slot %d -> %s: %d shards, %d words x %d epochs", i,
                        workers[i % len(workers)], len(slot), slot_words[i] // tc.epochs,
                        tc.epochs)
        tables = c.scatter(SamplingTables.from_vocab(vocab), broadcast=True)
        run_started = time.perf_counter()
        bar = tqdm(total=total_words, unit="word", unit_scale=True, desc="training",
                   disable=not show_progress(progress), file=sys.stderr)
        bar.update(sum(min(state["round"] * tc.sync_every, w) for w in slot_words))
        eta = tc.block_momentum if tc.block_momentum is not None else 1.0 - 1.0 / len(plan)
        anchor = state["round"]  # the round whose checkpoint the lineage starts from
        params_f = c.submit(_params_of, source, key=f"dw2v-params-start-{rid}")
        momentum_f = c.submit(_momentum_of, source, key=f"dw2v-momentum-start-{rid}")
        checkpoint_f = None
        round_started = time.perf_counter()
        for r in range(state["round"], rounds):
            lo, hi = r * tc.sync_every, (r + 1) * tc.sync_every
            done_lo = sum(min(lo, w) for w in slot_words)
            done_hi = sum(min(hi, w) for w in slot_words)
            lr_a, lr_b = (_learning_rate(tc, done_lo, total_words),
                          _learning_rate(tc, done_hi, total_words))
            results = []
            for i, slot in enumerate(shard_paths):
                if lo >= slot_words[i]:
                    continue
                seed = int(np.random.SeedSequence([tc.seed, r, i]).generate_state(1)[0])
                results.append(c.submit(
                    _train_slot, slot, tc.epochs, lo, hi, params_f, tables, tc, lr_a, lr_b,
                    seed, key=f"dw2v-train-r{r}-slot{i}-{rid}",
                    workers=[workers[i % len(workers)]], allow_other_workers=True))
            depth = 0
            while len(results) > SPLIT_EVERY:  # a tree of partial sums on the workers
                results = [c.submit(weighted_sum, results[i:i + SPLIT_EVERY],
                                    key=f"dw2v-sum-r{r}-l{depth}-{i // SPLIT_EVERY}-{rid}")
                           for i in range(0, len(results), SPLIT_EVERY)]
                depth += 1
            averaged = c.submit(average_round, results, params_f, momentum_f, r, eta,
                                key=f"dw2v-average-r{r}-{rid}")
            counters, ran_on = c.submit(_summary_of, averaged,
                                        key=f"dw2v-summary-r{r}-{rid}").result()
            now = time.perf_counter()
            terms = sum(x.loss_terms for x in counters)
            record = RoundRecord(
                round=r, words=sum(x.words_read for x in counters),
                words_kept=sum(x.words_kept for x in counters),
                examples=sum(x.examples for x in counters),
                loss=sum(x.loss_sum for x in counters) / terms if terms else float("nan"),
                seconds=now - round_started, seconds_training=max(x.seconds for x in counters),
                lr_start=lr_a, lr_end=lr_b, workers=list(ran_on))
            round_started = now
            records.append(record)
            state = dict(state, round=r + 1, history=[asdict(x) for x in records])
            if checkpoint_f is not None:
                checkpoint_f.result()  # one checkpoint in flight at a time, in round order
            checkpoint_f = c.submit(_checkpoint, str(out), averaged, state, anchor,
                                    key=f"dw2v-checkpoint-r{r}-{rid}")
            if r + 1 - anchor >= LINEAGE_ROUNDS:
                # restart the lineage from this checkpoint: a lost copy is re-read from disk
                source = c.submit(load_averaged, checkpoint_f.result(),
                                  key=f"dw2v-load-r{r}-{rid}")
                anchor = r + 1
            else:
                source = averaged
            params_f = c.submit(_params_of, source, key=f"dw2v-params-r{r}-{rid}")
            momentum_f = c.submit(_momentum_of, source, key=f"dw2v-momentum-r{r}-{rid}")
            del results, averaged
            bar.update(done_hi - done_lo)
            bar.set_postfix(loss=f"{record.loss:.4f}")
            logger.info("round %d/%d: %d words, %.0f words/s, lr %.5f->%.5f, loss %.4f, "
                        "outside training %.2f s of %.2f s", r + 1, rounds, record.words,
                        record.words / max(record.seconds, 1e-9), lr_a, lr_b, record.loss,
                        record.seconds - record.seconds_training, record.seconds)
        bar.close()
        if checkpoint_f is not None:
            checkpoint_f.result()
        final: Params = c.submit(_model_of, source, key=f"dw2v-model-{rid}").result()
        seconds_total = time.perf_counter() - run_started
    _write_model(out, final, config, len(vocab), records,
                 {"slots": len(plan), "total_words": total_words, "seconds": seconds_total})
    if not keep_work:
        shutil.rmtree(out / WORK_DIR, ignore_errors=True)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return load_embeddings(out)
