"""The averaging rule of the workers' sparse exchange, checkpoints, and the model's parameters.

The rule: a row a worker did not touch in a round carries no information from that worker, so
each row moves by the average of the changes of the workers *that touched it*, weighted by how
often each touched it; a row no worker touched keeps its value. Plain sums of updates blow up
(Spark's SPARK-24666); a plain mean dilutes rare words' updates by the number of workers.

Even the touched-row average moves a row that every worker touched by about the *mean* of their
updates, where sequential SGD over the same words would move it by about their sum, so N workers
would learn frequent words about N times slower. dw2v gives that progress back where it is
lost, in the workers: each trains at N times the learning rate (``TrainConfig.scale_lr``, the
linear scaling rule of large-batch SGD; Goyal et al., 2017); measured in benchmarks/RESULTS.md
§3 against scaling the averaged step (diverged with 4 workers) and block momentum (needed many
rounds to help; engine v2 dropped it).

Engine v2 (DESIGN.md) moves only the rows a round touched: each worker offers a
:class:`RowUpdate`, split by row owner (reduce-scatter); each owner averages its rows and sends
the result back to every worker (all-gather), which settles its replica on it. These are the
arrays-in, arrays-out steps of that exchange; the arithmetic is in ``dw2v.kernels.averaging``.
A checkpoint is written the same way, by the owners: each its own rows, then the driver
completes it (:func:`write_part`, :func:`finish_checkpoint`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dw2v.atomic import fsync_dir, replaced
from dw2v.errors import CheckpointError, NumericalError
from dw2v.kernels.averaging import (accumulate_rows, count_offered, fill_offered,
                                    finish_average, nonfinite_rows, settle_rows)


@dataclass(frozen=True)
class Params:
    """Input and output vectors, float32 (V, dim) each."""

    W_in: np.ndarray
    W_out: np.ndarray

    def copy(self) -> "Params":
        return Params(self.W_in.copy(), self.W_out.copy())


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


def diverged(bad: int, name: str, round_index: int) -> NumericalError:
    """The error of ``bad`` NaN or inf rows of a matrix (``name``) after a round."""
    return NumericalError(f"round {round_index + 1}: {bad} {name}vectors are NaN or inf: "
                          "training diverged (try a lower --alpha)")


def offer(replica: np.ndarray, base: np.ndarray, touches: np.ndarray, owners: int = 1,
          round_index: int = 0, name: str = "",
          select: np.ndarray | None = None) -> list[RowUpdate]:
    """A worker's offer, one :class:`RowUpdate` per owner (views of one allocation): the rows
    it touched since they were last averaged (``touches > 0``; only those in the boolean mask
    ``select`` when given), each with its change from ``base`` (the state the workers agree
    on; the replica equals it elsewhere) and its touches, grouped by owner in one pass
    (``kernels.averaging.fill_offered``). A touched row that is NaN or inf stops the run
    here, before anything is sent (``name``: which matrix, for the message)."""
    mask = np.zeros(0, np.bool_) if select is None else select
    bounds = np.empty(owners + 1, np.int64)
    count_offered(touches, mask, owners, bounds)
    n = int(bounds[-1])
    ids = np.empty(n, np.int32)
    delta = np.empty((n, replica.shape[1]), np.float32)
    weights = np.empty(n, np.float32)
    bad = fill_offered(replica, base, touches, mask, owners, bounds, ids, delta, weights)
    if bad:
        raise diverged(bad, name, round_index)
    return [RowUpdate(ids[lo:hi], delta[lo:hi], weights[lo:hi])
            for lo, hi in zip(bounds[:-1], bounds[1:])]


def touched_rows(replica: np.ndarray, base: np.ndarray, touches: np.ndarray,
                 round_index: int = 0, name: str = "",
                 select: np.ndarray | None = None) -> RowUpdate:
    """:func:`offer` to a single owner: the touched rows and their changes, in id order."""
    return offer(replica, base, touches, 1, round_index, name, select)[0]


def owner_of(ids: np.ndarray, owners: int) -> np.ndarray:
    """The worker that owns each row: rows interleaved (``id % owners``), so the frequent
    words, which have the low ids, spread evenly over the owners."""
    return ids % owners


def split_by_owner(update: RowUpdate, owners: int) -> list[RowUpdate]:
    """The parts of ``update`` each owner averages (the send side of the reduce-scatter),
    each in the update's order."""
    owner = owner_of(update.ids, owners)
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(owners + 1))
    ids, delta, touches = update.ids[order], update.delta[order], update.touches[order]
    return [RowUpdate(ids[lo:hi], delta[lo:hi], touches[lo:hi])
            for lo, hi in zip(bounds[:-1], bounds[1:])]


def average_updates(parts: Sequence[RowUpdate], rows: int, round_index: int = 0) -> RowUpdate:
    """The touched-row weighted average of several workers' updates of the same rows (of a
    matrix of ``rows`` rows): each row moves by ``sum_w t_w delta_w / sum_w t_w`` over the
    workers that touched it (the rule of this module's docstring, for replicas that
    started the round equal); its ``touches`` is the sum. Refuses NaN or inf. The parts are
    added one after another into one output (``kernels.averaging.accumulate_rows``), never
    concatenated first."""
    dim = next((p.delta.shape[1] for p in parts if p.delta.ndim == 2), 0)
    total = sum(len(p.ids) for p in parts)
    out_ids = np.empty(total, np.int32)
    out_delta = np.empty((total, dim), np.float32)
    out_weight = np.empty(total, np.float32)
    position = _positions(rows)
    m = 0
    for part in parts:
        m = accumulate_rows(part.ids, part.delta, part.touches.astype(np.float32, copy=False),
                            position, out_ids, out_delta, out_weight, m)
    bad = finish_average(position, out_ids, out_delta, out_weight, m)
    if bad:
        raise diverged(bad, "", round_index)
    return RowUpdate(out_ids[:m], out_delta[:m], out_weight[:m])


_SCRATCH = threading.local()


def _positions(rows: int) -> np.ndarray:
    """A row -> slot map of all -1, one per thread (the kernel leaves it all -1 again, and
    runs without the GIL), kept for the next call of the same size."""
    positions = getattr(_SCRATCH, "positions", None)
    if positions is None or len(positions) != rows:
        positions = _SCRATCH.positions = np.full(rows, -1, np.int32)
    return positions


def settle(replica: np.ndarray, base: np.ndarray,
           update: RowUpdate | Sequence[RowUpdate]) -> None:
    """Apply an averaged update, or the owners' parts of one (the receive side of the
    all-gather): its rows become ``base + delta`` in both the replica and its base, which
    then agree again."""
    for part in [update] if isinstance(update, RowUpdate) else update:
        settle_rows(replica, base, part.ids, part.delta)


def warm_up(dim: int) -> None:
    """Compile the exchange's kernels (or load them from Numba's cache) on a two-row matrix
    before the first round, so that its exchange does not carry the compilation: the offer
    (with and without a row mask), the owners' average of local and received (read-only)
    parts, the settle, and the NaN check."""
    replica = np.ones((2, dim), np.float32)
    base = np.zeros((2, dim), np.float32)
    touches = np.array([1, 0], np.int64)
    parts = offer(replica, base, touches, 2) + offer(replica, base, touches, 2,
                                                      select=np.ones(2, np.bool_))
    received = []
    for part in parts:
        arrays = [a.copy() for a in (part.ids, part.delta, part.touches)]
        for a in arrays:
            a.setflags(write=False)
        received.append(RowUpdate(*arrays))
    settle(replica, base, average_updates(parts + received, 2))
    settle(replica, base, received)
    nonfinite_rows(replica, touches)


# ------------------------------------------------------------------------- checkpoints

CHECKPOINTS = "checkpoints"
MATRICES = ("W_in", "W_out")


def _latest_round(root: Path) -> int:
    try:
        return int(json.loads((root / "latest.json").read_text())["round"])
    except (FileNotFoundError, ValueError, KeyError):
        return -1


def _name(number: int) -> str:
    return f"round-{number:05d}"


def _part_file(matrix: str, rank: int, size: int) -> str:
    return f"{matrix}.part-{rank:05d}-of-{size:05d}.npy"


def pending_dir(model_dir: str | Path, number: int, job: str) -> Path:
    """Where the owners write their parts of checkpoint ``number`` before it is complete."""
    return Path(model_dir) / CHECKPOINTS / f".{_name(number)}.tmp-{job}"


def owned(matrix: np.ndarray, rank: int, size: int) -> np.ndarray:
    """The rows owner ``rank`` of ``size`` holds (``merge.owner_of``: every size-th row)."""
    return matrix[rank::size]


def write_part(model_dir: str | Path, number: int, job: str, rank: int, size: int,
               rows: Params) -> Path:
    """Owner ``rank``'s rows of checkpoint ``number`` (``owned`` of each matrix), written into
    the checkpoint's pending directory and fsynced; the checkpoint is not complete, or seen by
    ``--resume``, until :func:`finish_checkpoint`."""
    pending = pending_dir(model_dir, number, job)
    # not parents=True: a stray writer of a run whose directory is gone must not make it again
    pending.mkdir(exist_ok=True)
    for matrix, values in zip(MATRICES, (rows.W_in, rows.W_out)):
        path = pending / _part_file(matrix, rank, size)
        with replaced(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(values))
            handle.flush()
            os.fsync(handle.fileno())
    return pending


_PENDING = re.compile(r"^\.round-(\d+)\.tmp-")


def finish_checkpoint(model_dir: str | Path, number: int, job: str, size: int,
                      state: dict[str, Any]) -> Path:
    """Complete checkpoint ``number`` once all ``size`` owners wrote their parts: its
    ``state.json``, fsynced, then the directory renamed to ``checkpoints/round-NNNNN`` and
    ``latest.json`` pointed at it (each step atomic); older rounds and older pending ones are
    removed. ``latest`` never moves backwards: a stale writer leaves a newer one in place."""
    root = Path(model_dir) / CHECKPOINTS
    pending = pending_dir(model_dir, number, job)
    missing = [_part_file(m, r, size) for r in range(size) for m in MATRICES
               if not (pending / _part_file(m, r, size)).exists()]
    if missing:
        raise CheckpointError(f"{pending}: parts missing: {', '.join(missing[:4])}")
    state = dict(state, round=number, parts=size)
    (pending / "state.json").write_text(json.dumps(state, indent=1))
    with open(pending / "state.json", "rb") as handle:
        os.fsync(handle.fileno())
    fsync_dir(pending)
    target = root / _name(number)
    if number <= _latest_round(root):
        shutil.rmtree(pending, ignore_errors=True)
        return target  # stale: a newer checkpoint exists
    if target.exists():
        shutil.rmtree(target)
    os.rename(pending, target)
    fsync_dir(root)
    with replaced(root / "latest.json") as pointer:
        pointer.write_text(json.dumps({"checkpoint": target.name, "round": number}))
    fsync_dir(root)
    for old in root.iterdir():
        older_pending = _PENDING.match(old.name)
        if old.name.startswith("round-") and old.name != target.name and old.name[6:].isdigit():
            if int(old.name[6:]) < number:
                shutil.rmtree(old, ignore_errors=True)
        elif older_pending and int(older_pending.group(1)) <= number:
            shutil.rmtree(old, ignore_errors=True)
    return target


def write_checkpoint(model_dir: str | Path, params: Params, state: dict[str, Any]) -> Path:
    """A whole checkpoint from one writer (its only owner): ``write_part`` and
    ``finish_checkpoint`` in one call."""
    number = int(state["round"])
    job = uuid.uuid4().hex[:12]
    (Path(model_dir) / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    try:
        write_part(model_dir, number, job, 0, 1, params)
        return finish_checkpoint(model_dir, number, job, 1, state)
    finally:
        shutil.rmtree(pending_dir(model_dir, number, job), ignore_errors=True)


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
    is a whole number >= 0, whose ``parts`` (when present) is a whole number >= 1, and which
    holds every one of ``keys``; else a :class:`CheckpointError` naming the file."""
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
    for key, least in (("round", 0), ("parts", 1)):
        value = state.get(key, least)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise CheckpointError(f"{file}: {key} is {value!r}, not a whole number >= {least}")
    return state


def load_params(path: str | Path) -> Params:
    """The parameters of one checkpoint directory, its owners' parts put back together;
    a missing, truncated or non-float32 part, parts that do not fit together, or one holding
    NaN or inf, is a :class:`CheckpointError` naming the file."""
    from dw2v.embeddings import check_finite, read_matrix
    from dw2v.errors import InputError

    path = Path(path)
    size = int(read_state(path).get("parts", 1))
    matrices = []
    for matrix in MATRICES:
        files = [path / _part_file(matrix, r, size) for r in range(size)]
        try:
            parts = [read_matrix(f) for f in files]
            for f, part in zip(files, parts):
                check_finite(f, part)
        except InputError as exc:
            raise CheckpointError(str(exc)) from None
        rows = sum(len(p) for p in parts)
        dim = parts[0].shape[1]
        for r, (f, part) in enumerate(zip(files, parts)):
            expected = (len(range(r, rows, size)), dim)
            if part.shape != expected:
                raise CheckpointError(f"{f}: shape {part.shape}, but the checkpoint's parts "
                                      f"of {rows} x {dim} give owner {r} {expected}")
        whole = np.empty((rows, dim), np.float32)
        for r, part in enumerate(parts):
            whole[r::size] = part
        matrices.append(whole)
    if matrices[0].shape != matrices[1].shape:
        raise CheckpointError(f"{path}: W_in is {matrices[0].shape} but W_out is "
                              f"{matrices[1].shape}")
    return Params(matrices[0], matrices[1])


def read_checkpoint(model_dir: str | Path) -> tuple[Params, dict[str, Any]] | None:
    """The latest complete checkpoint (parameters and state), or None when there is none."""
    path = latest_checkpoint(model_dir)
    if path is None:
        return None
    state = read_state(path)
    return load_params(path), state
