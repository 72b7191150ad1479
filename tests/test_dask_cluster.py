"""The embedded cluster's settings and the chain reduction the vocabulary stage uses."""

from __future__ import annotations

import operator
import re
from pathlib import Path

import dask
from distributed import Client

from dw2v.dask_cluster import QUIET_CLUSTER, chain_reduce, dask_environment


def test_the_embedded_cluster_runs_with_quiet_background_chores(client2: Client) -> None:
    def settings() -> dict[str, object]:
        return {key: dask.config.get(key) for key in QUIET_CLUSTER}

    for worker_settings in client2.run(settings).values():
        assert worker_settings == QUIET_CLUSTER
    assert client2.run_on_scheduler(settings) == QUIET_CLUSTER


def test_start_local_sh_gives_its_processes_the_same_settings() -> None:
    script = (Path(__file__).parent.parent / "cluster" / "start_local.sh").read_text()
    exported = dict(re.findall(r"^export (DASK_\w+)=\$\{\1:-([^}]*)\}$", script, re.M))
    assert exported == dask_environment()


def _concat(parts: list[list[int]]) -> list[int]:
    out: list[int] = []
    for part in parts:
        out.extend(part)
    return out


def test_chain_reduce_keeps_the_order_of_its_parts_whatever_their_number(
        client2: Client) -> None:
    for n in (1, 2, 7, 8, 9, 23):
        parts = [client2.submit(operator.mul, [i], 1, key=f"part-{n}-{i}") for i in range(n)]
        total = chain_reduce(client2, parts, _concat, split_every=4, name=f"chain-{n}")
        assert total.result() == list(range(n))
        # one task per step: the first takes 4 parts, each next one the total and 3 more
        assert total.key == f"chain-{n}-{max(0, -(-(n - 4) // 3))}"
