"""Averaging workers' parameters, checkpoints, and the final model files.

The averaging rule: a row a worker did not touch in a round carries no information from that
worker, so each row is the average of the workers' versions *that touched it*, weighted by how
often each touched it; a row no worker touched keeps its value. Plain sums of updates blow up
(Spark's SPARK-24666); a plain mean dilutes rare words' updates by the number of workers.

Even the touched-row average moves a row that every worker touched by about the *mean* of their
updates, where sequential SGD over the same words would move it by about their sum, so N workers
would learn frequent words about N times slower. dw2v gives that progress back where it is
lost, in the workers: each trains at N times the learning rate (``TrainConfig.scale_lr``, the
linear scaling rule of large-batch SGD; Goyal et al., 2017). Scaling the averaged step instead
diverged with 4 workers, and block momentum (BMUF; Chen & Huo, ICASSP 2016: ``G = eta G +
(average - P)``, the next round starting from the Nesterov look-ahead ``P + (average - P) + eta
G``) needs many rounds to build up; it is still available (``eta``, default 0). Measured in
benchmarks/RESULTS.md §3.

Partial results are sums (``total``: sum of touches x rows, ``weight``: sum of touches), so the
reduction runs as a tree on the workers; ``finalize`` divides, applies the momentum and refuses
NaN or inf. The arithmetic is in ``dw2v.kernels.averaging`` (one pass, touched rows only).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dw2v.atomic import fsync_dir
from dw2v.errors import CheckpointError, NumericalError
from dw2v.kernels.averaging import (accumulate, add_rows, block_update, group_by_owner,
                                    sparse_average)
from dw2v.shard_train import Params, TrainCounters, WorkerResult


@dataclass(frozen=True)
class Partial:
    """A sum over some workers: touches x rows (float32), touches (float64), their counters."""

    total_in: np.ndarray
    total_out: np.ndarray
    weight_in: np.ndarray
    weight_out: np.ndarray
    counters: list[TrainCounters] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)


def _add_result(out: Partial, result: WorkerResult) -> None:
    accumulate(out.total_in, out.weight_in, result.params.W_in, result.touches_in)
    accumulate(out.total_out, out.weight_out, result.params.W_out, result.touches_out)
    out.counters.append(result.counters)
    out.workers.append(result.worker)


def to_partial(result: WorkerResult) -> Partial:
    """A worker's result as a one-term sum."""
    W_in, W_out = result.params.W_in, result.params.W_out
    out = Partial(np.zeros_like(W_in), np.zeros_like(W_out), np.zeros(len(W_in)),
                  np.zeros(len(W_out)))
    _add_result(out, result)
    return out


def weighted_sum(parts: Sequence[WorkerResult | Partial]) -> Partial:
    """Add worker results or partial sums (a tree-reduction step, run on a worker) into one
    running sum, a worker's rows straight into it."""
    first = parts[0]
    if isinstance(first, Partial):
        out = Partial(first.total_in.copy(), first.total_out.copy(), first.weight_in.copy(),
                      first.weight_out.copy(), list(first.counters), list(first.workers))
    else:
        out = to_partial(first)
    for part in parts[1:]:
        if isinstance(part, Partial):
            for mine, theirs in ((out.total_in, part.total_in), (out.total_out, part.total_out),
                                 (out.weight_in, part.weight_in),
                                 (out.weight_out, part.weight_out)):
                np.add(mine, theirs, out=mine)
            out.counters.extend(part.counters)
            out.workers.extend(part.workers)
        else:
            _add_result(out, part)
    return out


@dataclass(frozen=True)
class Averaged:
    """The state after a round: ``params`` (where the next round starts: the look-ahead point),
    ``momentum`` (None without block momentum) and ``eta``."""

    params: Params
    momentum: Params | None
    eta: float
    counters: list[TrainCounters] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)

    def model(self) -> Params:
        """The model's parameters: ``params`` without the look-ahead ``eta * momentum``."""
        if self.momentum is None or self.eta == 0:
            return self.params
        return Params(self.params.W_in - np.float32(self.eta) * self.momentum.W_in,
                      self.params.W_out - np.float32(self.eta) * self.momentum.W_out)


def finalize(total: Partial, previous: Params, momentum: Params | None, round_index: int,
             eta: float = 0.0, *, in_place: bool = False) -> Averaged:
    """Touched-row weighted averages, then block momentum ``eta`` (0: none); refuse NaN/inf.
    ``in_place``: write the new parameters over ``total``'s sums (one model copy less at the
    round's peak; only for a ``total`` nothing else holds)."""
    if not 0.0 <= eta < 1.0:
        raise ValueError(f"block momentum must be in [0, 1), not {eta}")
    matrices = []
    for name, t, w, p, g in (("input", total.total_in, total.weight_in, previous.W_in,
                              None if momentum is None else momentum.W_in),
                             ("output", total.total_out, total.weight_out, previous.W_out,
                              None if momentum is None else momentum.W_out)):
        shape = p.shape if eta > 0 else (0, p.shape[1])
        g = np.zeros(shape, np.float32) if g is None or eta == 0 else g
        new_p = t if in_place else np.empty_like(p)  # block_update reads t[r, j] first
        new_g = np.empty(shape, np.float32)
        bad = block_update(t, w, p, g, eta, new_p, new_g)
        if bad:
            raise NumericalError(
                f"round {round_index + 1}: {bad} {name} vectors are NaN or inf after "
                "averaging: training diverged (try a lower --alpha)")
        matrices.append((new_p, new_g))
    params = Params(matrices[0][0], matrices[1][0])
    return Averaged(params, Params(matrices[0][1], matrices[1][1]) if eta > 0 else None, eta,
                    list(total.counters), list(total.workers))


def average_round(parts: Sequence[WorkerResult | Partial], previous: Params,
                  momentum: Params | None, round_index: int, eta: float = 0.0) -> Averaged:
    """The last step of a round's reduction: add ``parts`` and ``finalize`` in one task."""
    return finalize(weighted_sum(parts), previous, momentum, round_index, eta, in_place=True)


# ------------------------------------------------------------------- sparse row updates
# The exchange of engine v2 (DESIGN.md) moves only the rows a round touched: each worker
# offers a RowUpdate, split by row owner (reduce-scatter); each owner averages its rows with
# the touched-row weighted rule above and sends the result back to every worker (all-gather),
# which adds it to its replica. These are the arrays-in, arrays-out steps of that exchange.


@dataclass(frozen=True)
class RowUpdate:
    """Rows of one matrix touched in a round: unique int32 ``ids``, the float32 change
    of each row (``delta``, one row per id) and how often it was touched (``touches``)."""

    ids: np.ndarray
    delta: np.ndarray
    touches: np.ndarray

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.delta) == len(self.touches)):
            raise ValueError(f"ids, delta and touches differ in length: {len(self.ids)}, "
                             f"{len(self.delta)}, {len(self.touches)}")

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.delta.nbytes + self.touches.nbytes


def touched_rows(before: np.ndarray, after: np.ndarray, touches: np.ndarray) -> RowUpdate:
    """A worker's RowUpdate from its replica before and after a round and its touch counts."""
    ids = np.flatnonzero(touches > 0).astype(np.int32)
    return RowUpdate(ids, (after[ids] - before[ids]).astype(np.float32, copy=False),
                     touches[ids].astype(np.float32))


def owner_of(ids: np.ndarray, owners: int) -> np.ndarray:
    """The worker that owns each row: rows interleaved (``id % owners``), so the frequent
    words, which have the low ids, spread evenly over the owners."""
    return ids % owners


def split_by_owner(update: RowUpdate, owners: int) -> list[RowUpdate]:
    """The parts of ``update`` each owner averages (the send side of the reduce-scatter):
    views of one copy grouped by owner (``kernels.averaging.group_by_owner``)."""
    ids = np.empty_like(update.ids)
    delta = np.empty_like(update.delta)
    touches = np.empty_like(update.touches)
    bounds = np.empty(owners + 1, np.int64)
    group_by_owner(update.ids, update.delta, update.touches, owners, ids, delta, touches,
                   bounds)
    return [RowUpdate(ids[lo:hi], delta[lo:hi], touches[lo:hi])
            for lo, hi in zip(bounds[:-1], bounds[1:])]


def average_updates(parts: Sequence[RowUpdate], rows: int, round_index: int = 0) -> RowUpdate:
    """The touched-row weighted average of several workers' updates of the same rows (of a
    matrix of ``rows`` rows): each row moves by ``sum_w t_w delta_w / sum_w t_w`` over the
    workers that touched it (the rule of :func:`finalize` with ``eta = 0``, for replicas that
    started the round equal); its ``touches`` is the sum. Refuses NaN or inf like
    :func:`finalize`. One pass in ``kernels.averaging.sparse_average``."""
    dim = next((p.delta.shape[1] for p in parts if p.delta.ndim == 2), 0)
    ids = np.concatenate([p.ids for p in parts]) if parts else np.zeros(0, np.int32)
    delta = (np.concatenate([p.delta for p in parts]) if parts
             else np.zeros((0, dim), np.float32))
    touches = np.concatenate([p.touches for p in parts]) if parts else np.zeros(0, np.float32)
    out_ids = np.empty(len(ids), np.int32)
    out_delta = np.empty((len(ids), dim), np.float32)
    out_weight = np.empty(len(ids), np.float32)
    m = sparse_average(ids, delta, touches.astype(np.float32, copy=False), _positions(rows),
                       out_ids, out_delta, out_weight)
    mean = out_delta[:m]
    bad = int((~np.isfinite(mean).all(axis=1)).sum()) if m else 0
    if bad:
        raise NumericalError(f"round {round_index + 1}: {bad} vectors are NaN or inf after "
                             "averaging: training diverged (try a lower --alpha)")
    return RowUpdate(out_ids[:m], mean, out_weight[:m])


_SCRATCH = threading.local()


def _positions(rows: int) -> np.ndarray:
    """A row -> slot map of all -1, one per thread (the kernel leaves it all -1 again, and
    runs without the GIL), kept for the next call of the same size."""
    positions = getattr(_SCRATCH, "positions", None)
    if positions is None or len(positions) != rows:
        positions = _SCRATCH.positions = np.full(rows, -1, np.int32)
    return positions


def apply_rows(matrix: np.ndarray, update: RowUpdate) -> None:
    """Add an averaged update to a replica (the receive side of the all-gather)."""
    add_rows(matrix, update.ids, update.delta)


# ------------------------------------------------------------------------- checkpoints

CHECKPOINTS = "checkpoints"


def _latest_round(root: Path) -> int:
    try:
        return int(json.loads((root / "latest.json").read_text())["round"])
    except (FileNotFoundError, ValueError, KeyError):
        return -1


def write_checkpoint(model_dir: str | Path, params: Params | Averaged, state: dict[str, Any],
                     keep_from: int | None = None) -> Path:
    """Write ``checkpoints/round-NNNNN`` atomically (a temporary directory, fsynced, then
    renamed), then point ``checkpoints/latest.json`` at it (also atomically) and remove older
    rounds, except round ``keep_from`` (the one the running lineage restarts from), and
    leftover temporaries. ``latest`` never
    moves backwards: a stale writer (a task of a driver that died) leaves the newer checkpoint
    in place. With block momentum, the momentum is saved too (``G_in.npy``, ``G_out.npy``)."""
    averaged = params if isinstance(params, Averaged) else Averaged(params, None, 0.0)
    state = dict(state, eta=averaged.eta)
    root = Path(model_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    number = int(state["round"])
    name = f"round-{number:05d}"
    tmp = root / f".{name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        np.save(tmp / "W_in.npy", averaged.params.W_in)
        np.save(tmp / "W_out.npy", averaged.params.W_out)
        if averaged.momentum is not None:
            np.save(tmp / "G_in.npy", averaged.momentum.W_in)
            np.save(tmp / "G_out.npy", averaged.momentum.W_out)
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        for path in tmp.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        if number <= _latest_round(root):
            return root / name  # stale: a newer checkpoint exists
        target = root / name
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
        fsync_dir(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pointer = root / f".latest.tmp-{uuid.uuid4().hex[:12]}"
    pointer.write_text(json.dumps({"checkpoint": name, "round": number}))
    os.replace(pointer, root / "latest.json")
    fsync_dir(root)
    keep = {name, f"round-{keep_from:05d}" if keep_from is not None else name}
    for old in list(root.glob("round-*")) + list(root.glob(".round-*.tmp-*")):
        if old.name not in keep and not (old.name.startswith("round-")
                                         and int(old.name.split("-")[1]) > number):
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(model_dir: str | Path) -> Path | None:
    """The directory of the latest complete checkpoint, or None when there is none; a
    ``latest.json`` that cannot be read or names no complete checkpoint is a
    :class:`CheckpointError` naming it."""
    root = Path(model_dir) / CHECKPOINTS
    pointer = root / "latest.json"
    if not pointer.exists():
        return None
    try:
        info = json.loads(pointer.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CheckpointError(f"{pointer}: cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:  # UnicodeDecodeError too
        raise CheckpointError(f"{pointer}: not valid JSON ({exc})") from None
    name = info.get("checkpoint") if isinstance(info, dict) else None
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name:
        raise CheckpointError(f"{pointer}: names no checkpoint (expected an object with "
                              f"\"checkpoint\": \"round-NNNNN\", found {str(info)[:80]})")
    path = root / name
    if not (path / "state.json").exists():
        raise CheckpointError(f"{pointer}: points at {path.name}, which is incomplete")
    return path


def read_state(path: str | Path, keys: Sequence[str] = ()) -> dict[str, Any]:
    """The ``state.json`` of one checkpoint directory, checked: a JSON object whose ``round``
    is a whole number >= 0, whose ``eta`` (when present) is in [0, 1), and which holds every
    one of ``keys``; else a :class:`CheckpointError` naming the file."""
    file = Path(path) / "state.json"
    try:
        state = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{file}: missing (an incomplete checkpoint)") from None
    except OSError as exc:
        raise CheckpointError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:  # UnicodeDecodeError too
        raise CheckpointError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: not a JSON object (holds a {type(state).__name__})")
    missing = [k for k in ("round", *keys) if k not in state]
    if missing:
        raise CheckpointError(f"{file}: has no {', '.join(map(repr, missing))}: not a dw2v "
                              "checkpoint state, or a damaged one")
    number = state["round"]
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise CheckpointError(f"{file}: round is {number!r}, not a whole number >= 0")
    eta = state.get("eta", 0.0)
    if (not isinstance(eta, (int, float)) or isinstance(eta, bool)
            or not 0.0 <= eta < 1.0):  # NaN fails the comparison too
        raise CheckpointError(f"{file}: eta is {eta!r}, not a number in [0, 1)")
    return state


def _read_pair(path: Path, names: tuple[str, str], shape: tuple[int, ...] | None
               ) -> Params:
    """Two (V, dim) float32 matrices of a checkpoint, checked (complete, same shape, finite)."""
    from dw2v.embeddings import check_finite, read_matrix
    from dw2v.errors import InputError

    try:
        first, second = read_matrix(path / names[0]), read_matrix(path / names[1])
        for name, matrix in zip(names, (first, second)):
            check_finite(path / name, matrix)
    except InputError as exc:
        raise CheckpointError(str(exc)) from None
    expected = shape or first.shape
    for name, matrix in zip(names, (first, second)):
        if matrix.shape != expected:
            raise CheckpointError(f"{path / name}: shape {matrix.shape}, but the checkpoint's "
                                  f"parameters are {expected}")
    return Params(first, second)


def load_params(path: str | Path) -> Params:
    """The parameters of one checkpoint directory (a task: recomputable on any worker);
    a missing, truncated or non-float32 array, or one holding NaN or inf, is a
    :class:`CheckpointError` naming the file."""
    return _read_pair(Path(path), ("W_in.npy", "W_out.npy"), None)


def load_averaged(path: str | Path) -> Averaged:
    """Parameters, momentum and its ``eta`` of one checkpoint directory (a task)."""
    path = Path(path)
    params = load_params(path)
    eta = float(read_state(path).get("eta", 0.0))
    momentum = (_read_pair(path, ("G_in.npy", "G_out.npy"), params.W_in.shape)
                if (path / "G_in.npy").exists() or (path / "G_out.npy").exists() else None)
    return Averaged(params, momentum, eta if momentum is not None else 0.0)


def read_checkpoint(model_dir: str | Path) -> tuple[Params, dict[str, Any]] | None:
    """The latest complete checkpoint (parameters and state), or None when there is none."""
    path = latest_checkpoint(model_dir)
    if path is None:
        return None
    state = read_state(path)
    return load_params(path), state
