"""Engine v2's sparse exchange between resident tasks on real worker processes: the rows each
worker touched, averaged by their owners and gathered back, equal the plain touched-row
weighted average (``kernels.reference.touched_average``), and every replica ends equal (2 and 3
workers; rows touched by one worker, by several, by none)."""

from __future__ import annotations

import uuid
from typing import Any, Iterator

import numpy as np
import pytest
from distributed import Client

from dw2v import exchange, merge
from dw2v.dask_cluster import local_cluster
from dw2v.kernels.reference import touched_average

ROWS, DIM = 300, 8


def _round(rank: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The replica every worker starts from, this worker's replica after its round, and its
    touches: rows 0-9 nobody touches, 10-19 only rank 0, 20-29 everyone, the rest at random."""
    start = np.random.default_rng(seed).normal(size=(ROWS, DIM)).astype(np.float32)
    rng = np.random.default_rng([seed, rank])
    touches = rng.integers(0, 3, ROWS) * (rng.random(ROWS) < 0.5)
    touches[:10] = 0
    touches[10:20] = 2 if rank == 0 else 0
    touches[20:30] = 1 + rank
    after = start + np.where(touches[:, None] > 0, rng.normal(size=(ROWS, DIM)), 0)
    return start, after.astype(np.float32), touches


def _resident(job: str, addresses: list[str], seed: int) -> dict[str, Any]:
    """One worker's resident task: join the group, exchange one round, apply it."""
    from distributed import get_worker

    rank = addresses.index(get_worker().address)
    group = exchange.Group.join(job, addresses, timeout=30)
    try:
        start, after, touches = _round(rank, seed)
        update = merge.touched_rows(after, start, touches)
        averaged = group.average([update, update], [ROWS, ROWS])
        replica, base = after.copy(), start.copy()
        merge.settle(replica, base, averaged[0])
        return {"rank": rank, "replica": replica, "sent": group.bytes_sent,
                "offered": update.nbytes}
    finally:
        group.close()


@pytest.fixture(scope="module")
def client3() -> Iterator[Client]:
    with local_cluster(3) as client:
        yield client


@pytest.mark.parametrize("workers", [2, 3])
def test_the_exchange_equals_the_dense_rule_on_every_worker(workers: int, client2: Client,
                                                            client3: Client) -> None:
    client = client2 if workers == 2 else client3
    addresses = sorted(client.nthreads())
    assert len(addresses) == workers
    job = uuid.uuid4().hex[:8]
    client.run(exchange.register, job)
    seed = 7 + workers
    tasks = [client.submit(_resident, job, addresses, seed, workers=[a], pure=False,
                           key=f"test-exchange-{job}-{i}") for i, a in enumerate(addresses)]
    results = sorted(client.gather(tasks), key=lambda r: r["rank"])
    rounds = [_round(rank, seed) for rank in range(workers)]
    start = rounds[0][0]
    dense = touched_average([(after, touches) for _, after, touches in rounds], start)
    for r in results:
        np.testing.assert_allclose(r["replica"], dense, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(r["replica"], results[0]["replica"])  # replicas agree
        # a worker sends the others' shares of its rows, then its averaged rows to each peer
        assert 0 < r["sent"] < 2 * workers * r["offered"]
    np.testing.assert_array_equal(results[0]["replica"][:10], start[:10])
    # the job's handler is gone from every worker
    assert not any(client.run(lambda dask_worker: f"dw2v_attach_{job}" in dask_worker.handlers)
                   .values())


def _alone(job: str, addresses: list[str]) -> str:
    """A resident task whose peer never runs its side of the round."""
    group = exchange.Group.join(job, addresses, timeout=2)
    try:
        start, after, touches = _round(0, 1)
        group.average([merge.touched_rows(after, start, touches)], [ROWS])
    except Exception as exc:  # noqa: BLE001 - returned to the test
        return f"{type(exc).__name__}: {exc}"
    finally:
        group.close()
    return "no error"


def test_a_silent_peer_is_named_within_the_timeout(client2: Client) -> None:
    addresses = sorted(client2.nthreads())
    job = uuid.uuid4().hex[:8]
    client2.run(exchange.register, job)
    said = client2.submit(_alone, job, addresses, workers=[addresses[0]], pure=False).result()
    assert said == (f"ExchangeError: exchange: could not hear from worker {addresses[1]} "
                    "within 2 s (hung or lost)")
    # the peer's side was registered but never ran: the driver removes it
    assert client2.run(exchange.unregister, job) == {addresses[0]: False, addresses[1]: True}
