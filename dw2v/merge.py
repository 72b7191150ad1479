"""Averaging workers' parameters, checkpoints, and the final model files.

The averaging rule: a row a worker did not touch in a round carries no information from that
worker, so each row is the average of the workers' versions *that touched it*, weighted by how
often each touched it; a row no worker touched keeps its value. Plain sums of updates blow up
(Spark's SPARK-24666); a plain mean dilutes rare words' updates by the number of workers.

Partial results are sums (``weighted``: sum of touches x row, ``weight``: sum of touches), so
the reduction can run as a tree on the workers; ``finalize`` divides and checks for NaN or inf.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dw2v.errors import Dw2vError
from dw2v.shard_train import Params, TrainCounters, WorkerResult


class NumericalError(Dw2vError):
    """Parameters became NaN or inf; the message names the round."""


@dataclass(frozen=True)
class Partial:
    """A sum over some workers: touches x rows, touches, and their counters."""

    weighted_in: np.ndarray
    weighted_out: np.ndarray
    weight_in: np.ndarray
    weight_out: np.ndarray
    counters: list[TrainCounters] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)


def to_partial(result: WorkerResult) -> Partial:
    """A worker's result as a one-term sum (float64 weights, float32 rows scaled by them)."""
    w_in = result.touches_in.astype(np.float64)
    w_out = result.touches_out.astype(np.float64)
    return Partial(result.params.W_in * w_in[:, None].astype(np.float32),
                   result.params.W_out * w_out[:, None].astype(np.float32),
                   w_in, w_out, [result.counters], [result.worker])


def weighted_sum(parts: Sequence[WorkerResult | Partial]) -> Partial:
    """Add worker results or partial sums (a tree-reduction step, run on a worker); each part
    is converted and added in turn, so at most one extra sum is held at a time."""
    def as_partial(part: WorkerResult | Partial) -> Partial:
        return part if isinstance(part, Partial) else to_partial(part)

    first = as_partial(parts[0])
    out = Partial(first.weighted_in.copy(), first.weighted_out.copy(), first.weight_in.copy(),
                  first.weight_out.copy(), list(first.counters), list(first.workers))
    for part in parts[1:]:
        p = as_partial(part)
        for mine, theirs in ((out.weighted_in, p.weighted_in), (out.weighted_out, p.weighted_out),
                             (out.weight_in, p.weight_in), (out.weight_out, p.weight_out)):
            np.add(mine, theirs, out=mine)
        out.counters.extend(p.counters)
        out.workers.extend(p.workers)
    return out


def _average(weighted: np.ndarray, weight: np.ndarray, previous: np.ndarray) -> np.ndarray:
    out = previous.copy()
    touched = weight > 0
    out[touched] = weighted[touched] / weight[touched, None].astype(np.float32)
    return out


def finalize(total: Partial, previous: Params, round_index: int) -> Params:
    """Divide the sums into averages (untouched rows keep ``previous``); refuse NaN or inf."""
    params = Params(_average(total.weighted_in, total.weight_in, previous.W_in),
                    _average(total.weighted_out, total.weight_out, previous.W_out))
    for name, matrix in (("input", params.W_in), ("output", params.W_out)):
        if not np.isfinite(matrix).all():
            bad = int((~np.isfinite(matrix)).any(axis=1).sum())
            raise NumericalError(
                f"round {round_index}: {bad} {name} vectors are NaN or inf after averaging; "
                "training stopped, the last good checkpoint is kept (try a lower --alpha)")
    return params


# ------------------------------------------------------------------------- checkpoints

CHECKPOINTS = "checkpoints"


class CheckpointError(Dw2vError):
    """A checkpoint that cannot be read (names the path and the cause)."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _latest_round(root: Path) -> int:
    try:
        return int(json.loads((root / "latest.json").read_text())["round"])
    except (FileNotFoundError, ValueError, KeyError):
        return -1


def write_checkpoint(model_dir: str | Path, params: Params, state: dict[str, Any]) -> Path:
    """Write ``checkpoints/round-NNNNN`` atomically (a temporary directory, fsynced, then
    renamed), then point ``checkpoints/latest.json`` at it (also atomically) and remove older
    rounds and leftover temporaries. ``latest`` never moves backwards: a stale writer (a task
    of a driver that died) leaves the newer checkpoint in place."""
    root = Path(model_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    number = int(state["round"])
    name = f"round-{number:05d}"
    tmp = root / f".{name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        np.save(tmp / "W_in.npy", params.W_in)
        np.save(tmp / "W_out.npy", params.W_out)
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
        _fsync_dir(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pointer = root / f".latest.tmp-{uuid.uuid4().hex[:12]}"
    pointer.write_text(json.dumps({"checkpoint": name, "round": number}))
    os.replace(pointer, root / "latest.json")
    _fsync_dir(root)
    for old in list(root.glob("round-*")) + list(root.glob(".round-*.tmp-*")):
        if old.name != name and not (old.name.startswith("round-")
                                     and int(old.name.split("-")[1]) > number):
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(model_dir: str | Path) -> Path | None:
    """The directory of the latest complete checkpoint, or None when there is none."""
    root = Path(model_dir) / CHECKPOINTS
    pointer = root / "latest.json"
    if not pointer.exists():
        return None
    try:
        path = root / json.loads(pointer.read_text())["checkpoint"]
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{pointer}: unreadable ({exc})") from None
    if not (path / "state.json").exists():
        raise CheckpointError(f"{pointer}: points at {path.name}, which is incomplete")
    return path


def load_params(path: str | Path) -> Params:
    """The parameters of one checkpoint directory (a task: recomputable on any worker)."""
    path = Path(path)
    try:
        return Params(np.load(path / "W_in.npy"), np.load(path / "W_out.npy"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read parameters ({exc})") from None


def read_checkpoint(model_dir: str | Path) -> tuple[Params, dict[str, Any]] | None:
    """The latest complete checkpoint (parameters and state), or None when there is none."""
    path = latest_checkpoint(model_dir)
    if path is None:
        return None
    try:
        state = json.loads((path / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable state ({exc})") from None
    return load_params(path), state
