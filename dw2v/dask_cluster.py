"""Getting a Dask client, and the two cluster patterns dw2v uses: tree reduction and progress.

With no scheduler, dw2v starts an embedded ``LocalCluster`` of worker processes sized to the
machine and closes it afterwards. A user's own ``Client`` is used as it is and never closed.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from distributed import Client, Future, LocalCluster, as_completed
from tqdm.auto import tqdm

from dw2v.config import ClusterConfig

logger = logging.getLogger(__name__)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def client_for(config: ClusterConfig, client: Client | None = None) -> Iterator[Client]:
    """Yield a client: ``client`` as given, one connected to a scheduler, or a LocalCluster's."""
    if client is not None:
        yield client
        return
    if config.scheduler or config.scheduler_file:
        with Client(address=config.scheduler, scheduler_file=config.scheduler_file) as remote:
            logger.info("connected to %s (%d workers)", remote.scheduler.address,
                        len(remote.nthreads()))
            yield remote
        return
    n_workers = config.n_workers or _cpu_count()
    threads = config.threads_per_worker or 1
    with LocalCluster(n_workers=n_workers, threads_per_worker=threads, processes=True,
                      dashboard_address=config.dashboard_address) as cluster, \
            Client(cluster) as local:
        logger.info("started a LocalCluster: %d workers x %d threads", n_workers, threads)
        if config.dashboard_address:
            print(f"dw2v: Dask dashboard at {local.dashboard_link}", file=sys.stderr)
        yield local


def run_id() -> str:
    """A short id that keeps one job's task keys apart from another's on a shared cluster."""
    return uuid.uuid4().hex[:8]


def tree_reduce(client: Client, futures: Sequence[Future], func: Callable[..., Any], *,
                split_every: int, name: str, **kwargs: Any) -> Future:
    """Reduce futures on the workers: ``func(list_of_parts, **kwargs)`` over groups of
    ``split_every``, level by level, until one future is left (``func`` runs at least once,
    so the result is always its output). The tree's shape depends only on
    the order of ``futures``, so results do not depend on the number of workers."""
    if not futures:
        raise ValueError("nothing to reduce")
    level = list(futures)
    depth = 0
    while depth == 0 or len(level) > 1:  # at least one level, so the result is func's
        level = [
            client.submit(func, level[i:i + split_every], key=f"{name}-l{depth}-{i // split_every}",
                          **kwargs)
            for i in range(0, len(level), split_every)
        ]
        depth += 1
    return level[0]


def show_progress(enabled: bool | None) -> bool:
    """Progress bars by default only when stderr is a terminal."""
    return sys.stderr.isatty() if enabled is None else enabled


def wait_with_progress(futures: Sequence[Future], *, desc: str, unit: str,
                       weights: Sequence[int] | None = None, enabled: bool = False) -> None:
    """Wait for futures with a bar; raises the first task error as it arrives."""
    total = sum(weights) if weights is not None else len(futures)
    weight_of = {f.key: (weights[i] if weights is not None else 1) for i, f in enumerate(futures)}
    with tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=not enabled,
              file=sys.stderr) as bar:
        for future in as_completed(futures):
            if future.status == "error":
                future.result()  # raises the task's own exception
            bar.update(weight_of[future.key])
