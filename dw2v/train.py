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
from distributed import Client, get_worker
from tqdm.auto import tqdm

from dw2v import __version__
from dw2v.atomic import check_output_dir
from dw2v.config import ClusterConfig, IngestConfig, TrainConfig, VocabConfig, to_dict
from dw2v.dask_cluster import client_for, run_id, show_progress, tree_reduce
from dw2v.embeddings import MODEL_JSON, OUTPUT_VECTORS, VECTORS, Embeddings
from dw2v.embeddings import load as load_embeddings
from dw2v.errors import Dw2vError
from dw2v.merge import (CHECKPOINTS, finalize, latest_checkpoint, load_params, weighted_sum,
                        write_checkpoint)
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


def _checkpoint(model_dir: str, params: Params, state: dict[str, Any]) -> str:
    return str(write_checkpoint(model_dir, params, state))


def _summary_of(total: Any) -> tuple[list[Any], list[str]]:
    """The small part of a round's sum that the driver needs: counters and worker addresses."""
    return total.counters, total.workers


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
            params_f = c.submit(load_params, str(checkpoint), key=f"dw2v-params-resume-{rid}")
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
            params_f = c.submit(init_params, len(vocab), tc.vector_size, tc.seed,
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
        for r in range(state["round"], rounds):
            started = time.perf_counter()
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
            total = tree_reduce(c, results, weighted_sum, split_every=8,
                                name=f"dw2v-average-r{r}-{rid}")
            new_params = c.submit(finalize, total, params_f, r, key=f"dw2v-finalize-r{r}-{rid}")
            counters, ran_on = c.submit(_summary_of, total,
                                        key=f"dw2v-summary-r{r}-{rid}").result()
            terms = sum(x.loss_terms for x in counters)
            record = RoundRecord(
                round=r, words=sum(x.words_read for x in counters),
                words_kept=sum(x.words_kept for x in counters),
                examples=sum(x.examples for x in counters),
                loss=sum(x.loss_sum for x in counters) / terms if terms else float("nan"),
                seconds=0.0, seconds_training=max(x.seconds for x in counters),
                lr_start=lr_a, lr_end=lr_b, workers=list(ran_on))
            record = RoundRecord(**{**asdict(record), "seconds": time.perf_counter() - started})
            records.append(record)
            state = dict(state, round=r + 1, history=[asdict(x) for x in records])
            path = c.submit(_checkpoint, str(out), new_params, state,
                            key=f"dw2v-checkpoint-r{r}-{rid}").result()
            # the next round reads the parameters back from the checkpoint in a task: if the
            # worker holding them dies, Dask re-reads the file instead of replaying all rounds
            params_f = c.submit(load_params, path, key=f"dw2v-params-r{r}-{rid}")
            del total, results, new_params
            bar.update(done_hi - done_lo)
            bar.set_postfix(loss=f"{record.loss:.4f}")
            logger.info("round %d/%d: %d words, %.0f words/s, lr %.5f->%.5f, loss %.4f, "
                        "averaging and transfers %.1f s of %.1f s", r + 1, rounds, record.words,
                        record.words / max(record.seconds, 1e-9), lr_a, lr_b, record.loss,
                        record.seconds - record.seconds_training, record.seconds)
        bar.close()
        final: Params = params_f.result()
        seconds_total = time.perf_counter() - run_started
    _write_model(out, final, config, len(vocab), records,
                 {"slots": len(plan), "total_words": total_words, "seconds": seconds_total})
    if not keep_work:
        shutil.rmtree(out / WORK_DIR, ignore_errors=True)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return load_embeddings(out)
