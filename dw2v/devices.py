"""Which device a worker trains on (``--device cpu|gpu|auto``), decided on the worker itself.

A worker "sees a GPU" when Numba finds a CUDA device and CuPy imports, or when Numba's CUDA
simulator is on in that worker (``NUMBA_ENABLE_CUDASIM=1``: the GPU kernels then run on the
CPU, very slowly, which is how CI executes them). ``auto`` trains on a GPU where the worker
sees one and on the CPU elsewhere, so one cluster may mix both (they average rows with each
other through the same exchange). Nothing here imports CuPy or Numba's CUDA target unless a
GPU is asked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from dw2v.errors import ConfigError


DEVICES = ("cpu", "gpu", "auto")


def simulated() -> bool:
    """Whether Numba's CUDA simulator stands in for a GPU in this process."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def gpu_problem() -> str | None:
    """Why this process cannot train on a GPU; None when it can."""
    if simulated():
        return None
    try:
        from numba import cuda
    except ImportError as exc:  # pragma: no cover - numba is a dependency
        return f"numba's CUDA target does not import ({exc})"
    try:
        available = cuda.is_available()
    except Exception as exc:  # noqa: BLE001 - a broken driver raises many kinds
        return f"CUDA does not start ({exc})"
    if not available:
        return "no CUDA GPU is visible (numba.cuda.is_available() is false)"
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed (pip install 'dw2v[gpu]')"
    return None


@dataclass(frozen=True)
class DeviceChoice:
    """Where one worker trains: ``device`` "cpu" or "gpu", and what it is, for the log."""

    device: str
    name: str


def choose(requested: str, vector_size: int = 100, negative: int = 5) -> DeviceChoice:
    """The device for ``requested`` in this process (for vectors of ``vector_size`` and
    ``negative`` noise words: ``auto`` keeps to the CPU beyond the GPU kernels' limits);
    ``gpu`` where none is raises ConfigError saying why."""
    if requested not in DEVICES:
        raise ConfigError(f"--device {requested!r}: must be one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return DeviceChoice("cpu", _cpu_name())
    if requested == "gpu":
        check_settings(vector_size, negative)
    else:
        try:
            check_settings(vector_size, negative)
        except ConfigError:
            return DeviceChoice("cpu", _cpu_name() + ", the settings being beyond the GPU "
                                                     "kernels' limits")
    problem = gpu_problem()
    if problem is None:
        return DeviceChoice("gpu", _gpu_name())
    if requested == "gpu":
        raise ConfigError(f"--device gpu: {problem}; use --device auto (a GPU where a worker "
                          "has one) or --device cpu")
    return DeviceChoice("cpu", _cpu_name())


def _cpu_name() -> str:
    return f"CPU ({os.cpu_count() or 1} cores)"


def _gpu_name() -> str:
    if simulated():
        return "GPU: Numba's CUDA simulator (on the CPU)"
    from numba import cuda

    device = cuda.get_current_device()
    name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
    memory = cuda.current_context().get_memory_info().total / 2**30
    return f"GPU {device.id}: {name} ({memory:.0f} GiB)"


def worker_device(requested: str, vector_size: int, negative: int,
                  dask_worker: Any = None) -> dict[str, str]:
    """For ``client.run``: the device this worker trains on, or ``error`` saying why it
    cannot train on the one asked for."""
    try:
        choice = choose(requested, vector_size, negative)
    except ConfigError as exc:
        return {"device": "", "name": "", "error": str(exc)}
    return {"device": choice.device, "name": choice.name}


def probe(client: Any, requested: str, workers: list[str], vector_size: int,
          negative: int) -> dict[str, dict[str, str]]:
    """The client's side: each worker's device for ``requested`` (``{"device": "cpu" or
    "gpu", "name": what it is}``), decided on the worker (``worker_device``); a ConfigError
    naming the workers that cannot train on the device asked for."""
    if requested == "cpu":
        return {w: {"device": "cpu", "name": "CPU"} for w in workers}
    found = client.run(worker_device, requested, vector_size, negative, workers=workers)
    refused = sorted(w for w, r in found.items() if r.get("error"))
    if refused:
        raise ConfigError(f"{found[refused[0]]['error']} (on {len(refused)} of "
                          f"{len(workers)} workers: {', '.join(refused)})")
    return {w: found[w] for w in workers}


def check_settings(vector_size: int, negative: int) -> None:
    """The GPU kernels' limits (shared memory per block), as a clear error."""
    from dw2v.kernels.gpu import MAX_DIM, MAX_TARGETS

    if vector_size > MAX_DIM:
        raise ConfigError(f"--device gpu: --dim {vector_size} is above the GPU kernels' "
                          f"{MAX_DIM}; use a smaller --dim or --device cpu")
    if negative + 1 > MAX_TARGETS:
        raise ConfigError(f"--device gpu: --negative {negative} is above the GPU kernels' "
                          f"{MAX_TARGETS - 1}; use fewer or --device cpu")


def visible_gpus() -> int:
    """How many GPUs this process sees (the simulator counts as one)."""
    if simulated():
        return 1
    if gpu_problem() is not None:
        return 0
    from numba import cuda

    return len(cuda.gpus)
