"""The training driver: vocabulary, the plan of shards per worker, the engine, the model.

``train`` runs on the client only. It builds the vocabulary and token-id shards in a staging
directory beside the output, plans the shards over the workers, and hands the rounds to the
engine (``dw2v.engine``: one resident trainer per worker, exchanging touched rows directly).
When the last checkpoint is complete, a worker writes the vectors from it, this side writes
``model.json`` and the report, and the staging directory is swapped into place, so a run that
fails, diverges or is interrupted leaves an existing model exactly as it was.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import shutil
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from dw2v import __version__
from dw2v.atomic import (check_not_overlapping, check_output_dir, check_writable, foreign_entries,
                         output_lock, replaced, staging_dir, swap_into_place)
from dw2v.config import RunConfig, TrainConfig, to_dict
from dw2v.devices import check_settings, probe
from dw2v.embeddings import MODEL_JSON, OUTPUT_VECTORS, VECTORS, Embeddings
from dw2v.embeddings import check_matrix_header
from dw2v.embeddings import load as load_embeddings
from dw2v.errors import (ConfigError, Dw2vError, Interrupted, NumericalError, OutputExistsError,
                         Terminated, TrainError)
from dw2v.plan import TrainPlan, hot_rows, plan_shards, sync_period
from dw2v.preflight import check_run
from dw2v.report import ReportExtras, compute_extras, write_report
from dw2v.ingest import MemoryCorpus, as_inputs, paths_of
from dw2v.prepare import MANIFEST, WORK_DIR, build_into
from dw2v.vocab import Vocabulary
from dw2v.vocab import load as load_vocab

if TYPE_CHECKING:  # Dask and Numba are imported where they are used: ``import dw2v`` stays light
    from distributed import Client

    from dw2v.engine import RoundRecord

logger = logging.getLogger(__name__)
#: One line before training and where the report is after it: the ``dw2v`` command shows
#: this logger's INFO records without ``-v``.
console = logging.getLogger("dw2v.console")


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
    from dw2v.merge import latest_checkpoint, read_state

    path = latest_checkpoint(stage) if stage.is_dir() else None
    if path is None:
        done = " (its training finished)" if (target / MODEL_JSON).exists() else ""
        raise TrainError(f"{target}: nothing to resume{done}: no unfinished run with a "
                         f"checkpoint in {stage}; run without --resume")
    return path, read_state(path, keys=("plan", "config", "history", "slots", "slot_sizes",
                                        "checkpoints"))


def _changed_settings(given: TrainConfig, saved: dict[str, Any],
                      names: Mapping[str, str] | None) -> list[str]:
    """The training settings given now that differ from the checkpoint's and from their
    defaults (a setting left at its default was not asked for), named as the caller spells
    them: ``--dim 60`` with the CLI's ``names``, else ``vector_size=60``."""
    default = to_dict(TrainConfig())
    now = to_dict(given)
    return [f"{names.get(k, k)} {v}" if names is not None else f"{k}={v}"
            for k, v in sorted(now.items())
            if v != saved.get(k, v) and v != default[k] and k != "device"]


#: Model-sized float32 matrices a worker may hold at once: its replica (W_in, W_out), the base
#: its peers agree on, and at most about two more in a round that touches every row (the
#: changes offered, the owners' shares and averages) or while a checkpoint's rows are copied.
#: Used to refuse a model too large before it is allocated.
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


def write_vectors(out: str, checkpoint: str, save_output: bool) -> int:
    """On a worker: the model's vectors from the final checkpoint (each written, then
    renamed), so the model never passes through the client; returns the rows written."""
    from dw2v.merge import load_params

    params = load_params(checkpoint)

    def save(name: str, array: np.ndarray) -> None:
        with replaced(Path(out) / name) as tmp, open(tmp, "wb") as handle:
            np.save(handle, array)

    save(VECTORS, params.W_in)
    if save_output:
        save(OUTPUT_VECTORS, params.W_out)
    return len(params.W_in)


def _write_meta(out: Path, config: RunConfig, vocab_size: int, rounds: list[RoundRecord],
                extra: dict[str, Any]) -> None:
    """model.json, written then renamed, after the vectors (it marks the model done)."""
    settings = {"ingest": to_dict(config.ingest), "vocab": to_dict(config.vocab),
                "train": to_dict(config.train)}
    meta = {"dw2v_version": __version__, "vector_size": config.train.vector_size,
            "vocab_size": vocab_size, "settings": settings,
            "rounds": [asdict(r) for r in rounds], **extra}
    with replaced(out / MODEL_JSON) as tmp:
        tmp.write_text(json.dumps(meta, indent=1))


def _add_meta(out: Path, **items: Any) -> None:
    """Add ``items`` to the staged model's ``model.json`` (written then renamed)."""
    meta = json.loads((out / MODEL_JSON).read_text())
    with replaced(out / MODEL_JSON) as tmp:
        tmp.write_text(json.dumps({**meta, **items}, indent=1))


def train(inputs: str | Path | Sequence[str | Path], output: str | Path,
          config: RunConfig = RunConfig(), *,
          client: Client | None = None, overwrite: bool = False, resume: bool = False,
          keep_work: bool = False, progress: bool | None = None,
          init_from: str | Path | None = None, report: ReportExtras = ReportExtras(),
          command: Sequence[str] | None = None,
          setting_names: Mapping[str, str] | None = None) -> Embeddings:
    """Train word2vec on ``inputs`` and write the model to ``output``; return its vectors.

    The run builds the model in a staging directory beside ``output`` (:func:`staging_dir`;
    its checkpoints too) and swaps it into place only when every file is written and synced,
    so a run that fails, diverges or is interrupted leaves an existing ``output`` exactly as it
    was. ``overwrite`` lets the run replace an ``output`` that holds only dw2v output;
    ``resume`` continues the staged run from its last checkpoint.

    ``init_from``: continue training a model (a model directory): its vocabulary is extended
    with the new corpus's words, its vectors are kept, new words' rows start as usual. It may
    be ``output`` itself (the old model is read first and replaced only at the end).

    ``report``: the words whose neighbours, and the benchmark files whose scores, the model
    keeps in ``model.json`` and shows in ``report.html``; ``command``: the command line that
    ran this (the CLI passes it), shown in the report; ``setting_names``: how messages name
    the training settings (the CLI passes its options, ``vector_size``: ``--dim``; else the
    :class:`TrainConfig` fields)."""
    inputs = as_inputs(inputs)
    target = Path(output).absolute()
    stage = staging_dir(target)
    tc = config.train
    if tc.device == "gpu":
        check_settings(tc.vector_size, tc.negative)
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
    check_not_overlapping(target, [*paths_of(inputs), *based], allow_equal=based)
    check_writable(target)
    check_run(paths_of(inputs), config.cluster, client)  # resuming: no inputs, the cluster
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
            changed = [] if resumed is None else _changed_settings(
                tc, resumed[1]["config"], setting_names)
            if changed:
                logger.warning("resuming with the checkpoint's training settings; not used: "
                               "%s", ", ".join(changed))
            model = _train_staged(inputs, target, stage, config, client=client,
                                  resumed=resumed, keep_work=keep_work, progress=progress,
                                  base=base, base_dir=base_dir, report=report,
                                  command=list(command) if command is not None else None)
        except BaseException as exc:
            _after_failure(exc, target, stage, resume)
            raise
    return model



def _announce(out: Path, tc: TrainConfig, plan: TrainPlan, client: Client) -> None:
    """The run in one line (console): model, size, workers, vocabulary, the sync period."""
    try:
        report = json.loads((out / "vocab_report.json").read_text())
        words = (f"{report['distinct']:,} distinct words -> {report['kept']:,} kept, "
                 f"{report['tokens']:,} tokens")
    except (OSError, ValueError, KeyError):
        words = "the vocabulary"
    device = "" if tc.device == "cpu" else f", --device {tc.device}"
    console.info("training %s, %d dimensions, %s, on %s x %s%s: %s; rounds of %s words per "
                 "worker%s", tc.model, tc.vector_size, _plural(tc.epochs, "epoch"),
                 _plural(plan.size, "worker"), _kernel_threads(tc, client), device,
                 words, f"{plan.period:,}", " (auto)" if tc.sync_every is None else "")


def _kernel_threads(tc: TrainConfig, client: Client) -> str:
    """"2 kernel threads": the ones asked for, else those the workers have (their range)."""
    if tc.threads is not None:
        return _plural(tc.threads, "kernel thread")
    have = sorted(set(client.nthreads().values())) or [1]
    if len(have) == 1:
        return _plural(have[0], "kernel thread")
    return f"{have[0]}-{have[-1]} kernel threads"


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _safe_latest(stage: Path) -> Path | None:
    from dw2v.merge import latest_checkpoint

    try:
        return latest_checkpoint(stage)
    except Dw2vError:
        return None


def _after_failure(exc: BaseException, target: Path, stage: Path, resume: bool) -> None:
    """Keep the staging directory when it holds a checkpoint and resuming can help (not after
    a divergence), or a finished model; remove it otherwise; say which. The old model is never
    touched."""
    from dw2v.merge import CHECKPOINTS

    kept = _safe_latest(stage) if stage.is_dir() else None
    for pending in (stage / CHECKPOINTS).glob(".round-*.tmp-*"):  # parts of unfinished ones
        shutil.rmtree(pending, ignore_errors=True)
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


def _train_staged(inputs: Sequence[str] | MemoryCorpus, target: Path, out: Path,
                  config: RunConfig, *,
                  client: Client | None, resumed: tuple[Path, dict[str, Any]] | None,
                  keep_work: bool,
                  progress: bool | None, base: Vocabulary | None,
                  base_dir: Path | None, report: ReportExtras,
                  command: list[str] | None) -> Embeddings:
    """The run itself, in the staging directory ``out``; swaps it into ``target`` at the end."""
    from dw2v.dask_cluster import client_for, show_progress

    tc = config.train
    cc = config.cluster
    stages: dict[str, float] = {}  # seconds of each stage this run went through
    clock = time.perf_counter()
    # Numba and the trainers' modules (0.4-0.5 s, RESULTS.md §22) import while the cluster
    # starts, which is mostly waiting for the worker processes; a failed import is raised
    # by the import below
    engine_import = threading.Thread(target=_import_quietly, args=("dw2v.engine",),
                                     name="dw2v-import-engine", daemon=True)
    engine_import.start()
    # the model's last files are written on a thread while the cluster closes (0.4-0.6 s of
    # waiting for the worker processes to end): the pool waits for it, also on an error
    with ThreadPoolExecutor(1, thread_name_prefix="dw2v-finish") as pool, \
            client_for(cc, client, device=tc.device) as c:
        stages["cluster start"] = time.perf_counter() - clock
        engine_import.join()
        from dw2v.engine import Engine, RunSetup, records_of, restarts_of
        from dw2v.merge import CHECKPOINTS, latest_checkpoint, read_state

        if tc.device != "cpu":  # before the corpus is read: a worker without the GPU asked for
            probe(c, tc.device, sorted(c.nthreads()), tc.vector_size, tc.negative)
        if resumed is not None:
            checkpoint, state = resumed
            # where to train is the cluster's matter, not the model's: --device holds
            tc = TrainConfig(**{**state["config"], "device": tc.device})
            config = RunConfig(config.ingest, config.vocab, tc, cc)
            logger.info("resuming %s from round %d", target, state["round"])
            plan = TrainPlan.from_dict(state["plan"])
            slots, slot_sizes = state["slots"], state["slot_sizes"]
            records, restarts = records_of(state), restarts_of(state)
            start_round, start = state["round"] - plan.round_offset, checkpoint
            init_from = state.get("init_from")
            vocab = load_vocab(out)
        else:
            out.mkdir()
            built = build_into(out, inputs, ingest=config.ingest, vocab=config.vocab, client=c,
                               progress=progress, base=base, output=target)
            stages["vocabulary"] = built.seconds_vocab
            stages["encoding"] = built.seconds_encode
            vocab = load_vocab(out)
            manifest = json.loads((out / WORK_DIR / MANIFEST).read_text())
            workers = sorted(c.nthreads())
            if not workers:
                raise TrainError("the cluster has no workers")
            _check_memory(c, len(vocab), tc.vector_size)
            planned = plan_shards(manifest["shards"], len(workers))
            slots = [[f"{WORK_DIR}/{s['path']}" for s in slot] for slot in planned]
            slot_sizes = [[s["tokens"] for s in slot] for slot in planned]
            slot_words = [sum(sizes) * tc.epochs for sizes in slot_sizes]
            plan = TrainPlan.first(slot_words, sync_period(tc, slot_words, len(vocab)))
            records, restarts = [], []
            start_round, start = 0, None
            init_from = None if base_dir is None else str(base_dir)
        hot = hot_rows(tc, vocab.counts, plan.period)
        _announce(out, tc, plan, c)
        logger.info("%d rounds of %d words per worker%s, %d workers, a checkpoint every "
                    "%g s; the %d most frequent rows averaged every round, the others every "
                    "%d", plan.rounds, plan.period,
                    " (--sync-every auto)" if tc.sync_every is None else "", plan.size,
                    cc.checkpoint_every, hot, tc.cold_every)
        setup = RunSetup(out=out, config=tc, slots=slots, slot_sizes=slot_sizes, plan=plan,
                         start_round=start_round, start=start, base_dir=base_dir,
                         init_from=init_from, checkpoint_every=cc.checkpoint_every,
                         exchange_timeout=cc.exchange_timeout, worker_timeout=cc.worker_timeout,
                         hot_rows=hot)
        run_started = time.perf_counter()
        bar = tqdm(total=plan.total_words, unit="word", unit_scale=True, desc="training",
                   disable=not show_progress(progress), file=sys.stderr)
        bar.update(sum(r.words for r in records))
        (out / CHECKPOINTS).mkdir(exist_ok=True)  # the owners write their parts in it
        finished = plan.round_offset + plan.rounds
        checkpoints: list[int] = list(state["checkpoints"]) if resumed is not None else []
        dropped: set[str] = set()  # workers found hung: not asked to write the vectors
        devices: dict[str, str] = {}
        if start is None or plan.round_offset + start_round < finished:
            engine = Engine(c, setup, records, restarts, checkpoints, bar)
            engine.run()
            dropped, devices = engine.excluded, engine.devices
        bar.close()
        stages["training"] = time.perf_counter() - run_started
        clock = time.perf_counter()
        final = latest_checkpoint(out)
        assert final is not None
        final_state = read_state(final, keys=("plan",))
        c.submit(write_vectors, str(out), str(final), tc.save_output_vectors,
                 key=f"dw2v-vectors-{uuid.uuid4().hex[:12]}", pure=False,
                 workers=sorted(set(c.nthreads()) - dropped) or None).result()
        seconds_total = time.perf_counter() - run_started
        stages["writing vectors"] = time.perf_counter() - clock
        final_plan = TrainPlan.from_dict(final_state["plan"])
        slot_words = [sum(sizes) * tc.epochs for sizes in slot_sizes]
        meta = {"engine": 2, "slots": len(slots), "workers": final_plan.size,
                "sync_every": final_plan.period, "slot_words": slot_words,
                "total_words": final_plan.total_words, "seconds": seconds_total,
                "checkpoint_every": cc.checkpoint_every, "init_from": init_from,
                "restarts": [asdict(r) for r in restarts], "checkpoints": checkpoints,
                "words_trained_again": sum(r.words_trained_again for r in restarts),
                "devices": devices, "stages": stages, "command": command}
        finishing = pool.submit(_finish, out, target, config, len(vocab), records, meta,
                                report=report, keep_work=keep_work)
    finishing.result()
    swap_into_place(out, target)
    return load_embeddings(target)


def _import_quietly(module: str) -> None:
    """Import ``module`` ahead of its use (on a thread); its error, if any, is left to the
    import that uses it."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - raised again, where the module is used
        logger.debug("importing %s ahead failed: %s", module, exc)


def _finish(out: Path, target: Path, config: RunConfig, size: int,
            records: list[RoundRecord], meta: dict[str, Any], *, report: ReportExtras,
            keep_work: bool) -> None:
    """The trained model's last files in the staging directory ``out``: ``model.json`` (its
    extras too), ``report.html``; the work files removed. No cluster is needed."""
    from dw2v.merge import CHECKPOINTS

    _write_meta(out, config, size, records, meta)
    emb = load_embeddings(out)  # read once: for the extras and the report
    extras = compute_extras(emb, report)
    _add_meta(out, extras=extras)
    if not keep_work:
        shutil.rmtree(out / WORK_DIR, ignore_errors=True)
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    try:
        write_report(out, name=target.name,
                     emb=dataclasses.replace(emb, meta={**emb.meta, "extras": extras}))
    except Exception as exc:  # noqa: BLE001 - the model is written; the report is extra
        logger.warning("the model is written, but its report.html could not be: %s", exc)
    try:  # the run was allowed to replace the output; it must still hold only dw2v's files
        check_output_dir(target, overwrite=True)
    except Dw2vError as exc:
        raise TrainError(f"the model is complete, but {exc}") from None
