"""Shared fixtures: the shipped sample corpus, and session LocalClusters of worker processes."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from distributed import Client

from dw2v.dask_cluster import local_cluster
from dw2v.testing import SAMPLE_DIR


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
