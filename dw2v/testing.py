"""Helpers shared by the test suite and the benchmarks: tiny corpora, a plain-Python reference
tokenizer, and a real ``dask scheduler`` plus ``dask worker`` processes on 127.0.0.1."""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from dw2v.dask_cluster import dask_environment

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "sample"

#: The default token pattern in Python's ``re`` syntax (``[^\W_]`` is a letter or a digit).
REFERENCE_PATTERN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def reference_tokens(text: str | None, lowercase: bool = True) -> list[str]:
    """Tokens of one document by the default rules, in plain Python (the tests' yardstick)."""
    if not text:
        return []
    return REFERENCE_PATTERN.findall(text.lower() if lowercase else text)


def reference_counts(texts: Iterable[str | None]) -> collections.Counter[str]:
    return collections.Counter(t for text in texts for t in reference_tokens(text))


def write_parquet(path: str | Path, texts: Sequence[str | None], *, column: str = "text",
                  extra: dict[str, Sequence[Any]] | None = None, **kwargs: Any) -> Path:
    """Write one Parquet file with a string column (and any extra columns)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"doc_id": pa.array(range(len(texts)), pa.int64()),
                            column: pa.array(texts, pa.string())}
    data.update(extra or {})
    pq.write_table(pa.table(data), path, **kwargs)
    return path


def _wait_for_workers(scheduler_file: Path, n_workers: int, timeout: float) -> str:
    from distributed import Client

    deadline = time.monotonic() + timeout
    while not scheduler_file.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the scheduler did not write its file")
        time.sleep(0.1)
    with Client(scheduler_file=str(scheduler_file), timeout=timeout) as client:
        client.wait_for_workers(n_workers, timeout=max(deadline - time.monotonic(), 1))
        return str(json.loads(scheduler_file.read_text())["address"])


@contextmanager
def dask_processes(workdir: str | Path, n_workers: int = 2, *, nthreads: int = 1,
                   timeout: float = 60.0, worker_env: Sequence[dict[str, str]] = ()
                   ) -> Iterator[tuple[str, Path, list[subprocess.Popen[bytes]]]]:
    """Start ``dask scheduler`` and ``n_workers`` ``dask worker`` processes on 127.0.0.1
    (worker i with ``worker_env[i]`` added to its environment, where given).

    Yields (scheduler address, scheduler file, worker processes); stops them all at the end.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    scheduler_file = workdir / "scheduler.json"
    # the embedded cluster's Dask settings, as cluster/start_local.sh gives them; the
    # environment overrides them
    env = {**dask_environment(), **os.environ}
    log = open(workdir / "dask.log", "ab")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1",
             "--port", "0", "--dashboard-address", ":0", "--scheduler-file",
             str(scheduler_file)], stdout=log, stderr=log, env=env))
        workers = []
        for i in range(n_workers):
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "dask", "worker", "--scheduler-file",
                 str(scheduler_file), "--host", "127.0.0.1", "--nthreads", str(nthreads),
                 "--nworkers", "1", "--no-nanny", "--dashboard-address", ":0",
                 "--name", f"w{i}", "--local-directory", str(workdir / f"w{i}")],
                stdout=log, stderr=log,
                env={**env, **(worker_env[i] if i < len(worker_env) else {})}))
        procs.extend(workers)
        address = _wait_for_workers(scheduler_file, n_workers, timeout)
        yield address, scheduler_file, workers
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def tree_digest(root: str | Path) -> dict[str, str]:
    """Every file and directory under ``root`` (relative paths, hidden ones included) with the
    SHA-256 of its bytes ("dir" for a directory): equal digests mean an unchanged tree."""
    import hashlib

    root = Path(root)
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             every: float = 0.02) -> None:
    """Poll ``predicate`` until it holds; TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(every)
