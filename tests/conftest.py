"""Shared fixtures: the shipped sample corpus, and session LocalClusters of worker processes."""

from __future__ import annotations

import os
import shutil

# Without a GPU, Numba's CUDA simulator runs the GPU kernels (it must be chosen before Numba is
# first imported): the cudasim tests then execute every line of them on the CPU.
if shutil.which("nvidia-smi") is None:
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

from pathlib import Path  # noqa: E402
from typing import Iterator  # noqa: E402

import pytest  # noqa: E402
from distributed import Client  # noqa: E402

from dw2v.dask_cluster import local_cluster  # noqa: E402
from dw2v.testing import SAMPLE_DIR  # noqa: E402


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE_DIR


def _cluster(n_workers: int) -> Iterator[Client]:
    """A LocalCluster of worker processes as ``dw2v train`` makes it (its Dask settings)."""
    with local_cluster(n_workers) as client:
        yield client


@pytest.fixture(scope="session")
def client1() -> Iterator[Client]:
    """A LocalCluster with one worker process (one thread)."""
    yield from _cluster(1)


@pytest.fixture(scope="session")
def client2() -> Iterator[Client]:
    """A LocalCluster with two worker processes (one thread each)."""
    yield from _cluster(2)
