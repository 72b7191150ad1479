"""Shared fixtures: the shipped sample corpus, and session LocalClusters of worker processes."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from distributed import Client, LocalCluster

from dw2v.testing import SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE_DIR


def _cluster(n_workers: int) -> Iterator[Client]:
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(scope="session")
def client1() -> Iterator[Client]:
    """A LocalCluster with one worker process (one thread)."""
    yield from _cluster(1)


@pytest.fixture(scope="session")
def client2() -> Iterator[Client]:
    """A LocalCluster with two worker processes (one thread each)."""
    yield from _cluster(2)
