"""Getting a Dask client, and the two cluster patterns dw2v uses: reduction and progress.

With no scheduler, dw2v starts an embedded ``LocalCluster`` sized to the machine (by default
one worker with a thread per core, in this process: it needs no process of its own) and closes
it afterwards. A user's own ``Client`` is used as it is and never closed.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator, Sequence

import dask
from distributed import Client, Future, LocalCluster, as_completed
from tqdm.auto import tqdm

from dw2v.config import ClusterConfig

logger = logging.getLogger(__name__)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: Dask settings of the embedded LocalCluster. Its background chores (event-loop ticks every
#: 20 ms, system and memory monitors, the statistical profiler sampling every 10 ms) took 15 %
#: of a core in an idle 2-worker cluster, and on a machine whose cores all train, that time is
#: taken from the kernels; these intervals cut it to 2 % (benchmarks/RESULTS.md §3d).
#: The cost: the dashboard's system plots refresh every 5 s and its profile page stays empty.
QUIET_CLUSTER = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.worker.profile.enabled": False,
}


def dask_environment(settings: dict[str, Any] = QUIET_CLUSTER) -> dict[str, str]:
    """``settings`` as the environment variables Dask reads them from (for processes that
    dw2v does not start itself: ``dask scheduler``, ``dask worker``)."""
    return {"DASK_" + key.upper().replace(".", "__").replace("-", "_"): str(value)
            for key, value in settings.items()}


#: Seconds a run lasts before the embedded cluster's dashboard starts. Bokeh's import holds
#: the GIL for 0.4-0.5 s and delayed every run by that much (benchmarks/RESULTS.md §24), most
#: of them too short to watch; a run still going after this long gets its dashboard then.
DASHBOARD_AFTER = 10.0


@contextmanager
def local_cluster(n_workers: int, threads_per_worker: int = 1,
                  dashboard_address: str | None = ":0",
                  settings: dict[str, Any] = QUIET_CLUSTER,
                  processes: bool = True, dashboard_later: bool = False) -> Iterator[Client]:
    """A LocalCluster with Dask ``settings`` (by default the quiet ones ``dw2v train`` uses),
    and its client. Its worker processes ignore Ctrl-C (``dw2v.worker_setup``): the driver
    stops the run and closes them. ``processes=False``: the workers run in this process.
    ``dashboard_later``: the scheduler listens at ``dashboard_address`` from the start, but
    serves its Bokeh pages only once :func:`attach_dashboard` is called."""
    preload = [*dask.config.get("distributed.worker.preload", [])]
    if processes:
        preload.append("dw2v.worker_setup")
    later = {"dashboard": False} if dashboard_later and dashboard_address is not None else {}
    with dask.config.set(settings), dask.config.set({"distributed.worker.preload": preload}), \
            LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                         processes=processes, dashboard_address=dashboard_address,
                         scheduler_kwargs=later) as cluster, \
            Client(cluster) as client:
        yield client


def attach_dashboard(cluster: LocalCluster) -> bool:
    """Add the Bokeh dashboard to a LocalCluster started with ``dashboard_later`` (its pages
    on the scheduler's HTTP server, on the scheduler's event loop) and print its link.
    Returns whether it was attached. A failure is logged, never raised: the run does not need
    the page."""
    scheduler = getattr(cluster, "scheduler", None)
    if scheduler is None or getattr(scheduler, "http_server", None) is None:
        return False
    try:
        from distributed.dashboard.scheduler import connect
    except ImportError as exc:  # no Bokeh: Dask's own start would have said so
        logger.warning("the Dask dashboard is unavailable: %s", exc)
        return False
    done = threading.Event()
    attached: list[bool] = []

    def on_loop() -> None:
        try:
            if scheduler.status.name not in ("closing", "closed", "failed"):
                connect(scheduler.http_application, scheduler.http_server, scheduler,
                        prefix="/")
                attached.append(True)
        except Exception as exc:  # noqa: BLE001 - the page is a convenience
            logger.warning("the Dask dashboard could not start: %s", exc)
        finally:
            done.set()

    try:
        cluster.loop.add_callback(on_loop)
    except RuntimeError:  # the cluster closed meanwhile
        return False
    done.wait(30)
    if attached:
        tqdm.write(f"dw2v: Dask dashboard at {cluster.dashboard_link}", file=sys.stderr)
    return bool(attached)


@contextmanager
def _dashboard_after(cluster: LocalCluster, seconds: float) -> Iterator[None]:
    """:func:`attach_dashboard` once the block has lasted ``seconds`` (on a daemon timer);
    never for a shorter one."""
    timer = threading.Timer(seconds, attach_dashboard, (cluster,))
    timer.daemon = True
    timer.name = "dw2v-dashboard"
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@contextmanager
def gpu_cluster(n_workers: int | None, dashboard_address: str | None = ":0",
                settings: dict[str, Any] = QUIET_CLUSTER) -> Iterator[Client]:
    """A cluster of one worker process per visible GPU (or ``n_workers``), each seeing only
    its own: dask-cuda's ``LocalCUDACluster`` when installed, else worker processes started
    with their own ``CUDA_VISIBLE_DEVICES``. Its client."""
    from dw2v.devices import visible_gpus

    preload = [*dask.config.get("distributed.worker.preload", []), "dw2v.worker_setup"]
    with dask.config.set(settings), dask.config.set({"distributed.worker.preload": preload}):
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            LocalCUDACluster = None
        if LocalCUDACluster is not None:
            with LocalCUDACluster(n_workers=n_workers, threads_per_worker=1,
                                  dashboard_address=dashboard_address) as cluster, \
                    Client(cluster) as client:
                yield client
            return
        from distributed import Nanny, Scheduler, SpecCluster

        gpus = [str(i) for i in range(max(visible_gpus(), 1))]
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible:
            gpus = [g.strip() for g in visible.split(",") if g.strip()] or gpus
        count = n_workers or len(gpus)
        # worker i sees GPU i first (its device 0), as dask-cuda orders them
        workers = {i: {"cls": Nanny, "options": {
            "nthreads": 1, "silence_logs": logging.WARN,
            "env": {"CUDA_VISIBLE_DEVICES": ",".join(gpus[(i + k) % len(gpus)]
                                                     for k in range(len(gpus)))}}}
            for i in range(count)}
        scheduler = {"cls": Scheduler, "options": {"dashboard_address": dashboard_address}}
        with SpecCluster(workers=workers, scheduler=scheduler,
                         silence_logs=logging.WARN) as cluster, \
                Client(cluster) as client:
            yield client


def local_gpus(device: str) -> bool:
    """Whether an embedded cluster for ``--device`` is one of GPU workers: ``gpu``, or
    ``auto`` where this machine has a GPU (``dw2v.devices``)."""
    if device == "cpu":
        return False
    from dw2v.devices import gpu_problem

    return device == "gpu" or gpu_problem() is None


@contextmanager
def client_for(config: ClusterConfig, client: Client | None = None,
               device: str = "cpu") -> Iterator[Client]:
    """Yield a client: ``client`` as given, one connected to a scheduler, or an embedded
    cluster's: a LocalCluster, or one worker per GPU for ``--device gpu`` (and ``auto`` on
    a machine with a GPU)."""
    if client is not None:
        yield client
        return
    if config.scheduler or config.scheduler_file:
        with _connect(config) as remote:
            logger.info("connected to %s (%d workers)", remote.scheduler.address,
                        len(remote.nthreads()))
            yield remote
        return
    if local_gpus(device):
        from dw2v.devices import gpu_problem

        problem = gpu_problem()
        if problem is not None:
            from dw2v.errors import ConfigError

            raise ConfigError(f"--device gpu: {problem}; use --device auto or cpu")
        with gpu_cluster(config.n_workers, config.dashboard_address) as local:
            logger.info("started a cluster of %d GPU workers", len(local.nthreads()))
            if config.dashboard_address:
                print(f"dw2v: Dask dashboard at {local.dashboard_link}", file=sys.stderr)
            yield local
        return
    n_workers, threads = embedded_layout(config.n_workers, config.threads_per_worker,
                                         _cpu_count())
    # One worker trains in this process: a process of its own would add its start (0.6 s:
    # spawning it, importing Dask and Numba again) and nothing else, since its kernels
    # release the GIL (benchmarks/RESULTS.md §23). Several workers stay processes, one each.
    in_process = n_workers == 1
    later = bool(config.dashboard_address)
    with local_cluster(n_workers, threads, config.dashboard_address,
                       processes=not in_process, dashboard_later=later) as local:
        logger.info("started a LocalCluster: %d worker%s x %d thread%s%s", n_workers,
                    "s" * (n_workers != 1), threads, "s" * (threads != 1),
                    " (in this process)" if in_process else "")
        with _dashboard_after(local.cluster, DASHBOARD_AFTER) if later else nullcontext():
            yield local


def embedded_layout(n_workers: int | None, threads: int | None, cores: int) -> tuple[int, int]:
    """The embedded LocalCluster's workers and threads per worker. By default one worker with
    a thread per core: on one machine, Hogwild threads on one shared model trained faster
    than one process per core averaging replicas, and at gensim's quality (the whole command
    1.24-1.53x as fast on 2 cores, benchmarks/RESULTS.md §23). ``--workers N`` alone: N
    single-threaded workers; ``--threads-per-worker T`` alone: as many workers as fit."""
    if n_workers is None and threads is None:
        return 1, cores
    if n_workers is None:
        return max(1, cores // threads), threads
    return n_workers, threads or 1


@contextmanager
def _connect(config: ClusterConfig) -> Iterator[Client]:
    """A client of the scheduler ``config`` names, or a ClusterError within
    ``config.connect_timeout`` seconds (Dask waits for ever for a missing scheduler file)."""
    from dw2v.errors import ClusterError
    from dw2v.preflight import check_scheduler_file

    where = (f"--scheduler {config.scheduler}" if config.scheduler
             else f"--scheduler-file {config.scheduler_file}")
    if config.scheduler_file:
        check_scheduler_file(config.scheduler_file)
    try:
        client = Client(address=config.scheduler, scheduler_file=config.scheduler_file,
                        timeout=config.connect_timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"{where}: cannot reach the scheduler within "
                           f"{config.connect_timeout:g} s ({exc}); check that it runs and "
                           "the address, or raise --connect-timeout") from None
    with client:
        yield client


def workers_in_process(client: Client) -> bool:
    """Whether every worker of ``client`` runs in this process (``processes=False``)."""
    return all(address.startswith("inproc://") for address in client.nthreads())


def run_id() -> str:
    """A short id that keeps one job's task keys apart from another's on a shared cluster."""
    return uuid.uuid4().hex[:8]


def chain_reduce(client: Client, futures: Sequence[Future], func: Callable[..., Any], *,
                 split_every: int, name: str, priority: int = 0, **kwargs: Any) -> Future:
    """Reduce futures on the workers with ``func(list_of_parts, **kwargs)``: the first task
    takes ``split_every`` parts, each next one the running result and the next
    ``split_every - 1`` parts (``func`` runs at least once, so the result is always its output).

    A reduction tree whose every level is kept until the level above is complete holds more
    partial results the more parts there are; this chain holds one, so memory does not grow
    with the number of parts. Its shape depends only on the order of ``futures``, so results
    do not depend on the number of workers. A ``priority`` above that of the tasks making the
    parts lets each step run as soon as its parts exist, before more parts are made."""
    if not futures:
        raise ValueError("nothing to reduce")
    parts = list(futures)
    total = client.submit(func, parts[:split_every], key=f"{name}-0", priority=priority,
                          **kwargs)
    step = split_every - 1
    for i, start in enumerate(range(split_every, len(parts), step), start=1):
        total = client.submit(func, [total, *parts[start:start + step]], key=f"{name}-{i}",
                              priority=priority, **kwargs)
    return total


def show_progress(enabled: bool | None) -> bool:
    """Progress bars by default only when stderr is a terminal."""
    return sys.stderr.isatty() if enabled is None else enabled


def restart_clock(bar: Any) -> None:
    """Start a bar's rate and ETA from now, keeping its count: the time before (the kernels'
    compilation) says nothing about the time the rest will take."""
    n = bar.n
    bar.reset(bar.total)
    bar.initial = bar.n = bar.last_print_n = n
    bar.refresh()


def wait_with_progress(futures: list[Future], *, desc: str, unit: str,
                       weights: Sequence[int] | None = None, enabled: bool = False,
                       release: bool = False) -> None:
    """Wait for futures with a bar; raises the first task error as it arrives.

    ``release=True`` empties ``futures`` and lets go of each one once it is done, so that the
    cluster can free a result as soon as the tasks that consume it have run (a caller that
    holds the list would keep every result alive until the end)."""
    total = sum(weights) if weights is not None else len(futures)
    weight_of = {f.key: (weights[i] if weights is not None else 1) for i, f in enumerate(futures)}
    pending = as_completed(futures)
    if release:
        futures.clear()
    with tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=not enabled,
              file=sys.stderr) as bar:
        for future in pending:
            if future.status == "error":
                future.result()  # raises the task's own exception
            bar.update(weight_of[future.key])
