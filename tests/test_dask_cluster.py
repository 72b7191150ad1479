"""The embedded cluster's settings, ``cluster/start_local.sh``, and the chain reduction the
vocabulary stage uses."""

from __future__ import annotations

import operator
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import pytest
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


SCRIPT = Path(__file__).parent.parent / "cluster" / "start_local.sh"


def _start_local(args: list[str], **env: str) -> subprocess.Popen[str]:
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                   "DASHBOARD": "127.0.0.1:0", **env}
    return subprocess.Popen(["bash", str(SCRIPT), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment,
                            start_new_session=True)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


def test_start_local_sh_waits_for_its_workers_and_prints_the_dashboard(tmp_path: Path) -> None:
    proc = _start_local(["2", "1", str(tmp_path / "dask")])
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:  # the script prints its summary once every worker joined
            lines.append(line)
            if line.startswith("  dw2v train"):
                break
        text = "".join(lines)
        assert "scheduler and 2 workers running" in text, (text, proc.stderr)
        assert re.search(r"^dashboard: http://127\.0\.0\.1:\d+/status$", text, re.M), text
        with Client(scheduler_file=str(tmp_path / "dask" / "scheduler.json"),
                    timeout=30) as client:
            assert len(client.nthreads()) == 2  # both there when the script said so
    finally:
        _stop(proc)
    assert proc.returncode is not None


def test_start_local_sh_says_so_when_its_workers_do_not_join(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = _start_local(["1", "not-a-number", str(tmp_path / "dask")], START_TIMEOUT="5")
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        _stop(proc)
    assert proc.returncode == 1
    assert "not every worker joined within 5 s; see the logs in" in err
    assert time.monotonic() - started < 60


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


def test_one_embedded_worker_runs_in_this_process_and_several_in_processes_of_their_own(
        ) -> None:
    """A single worker needs no process of its own (its start is the saving, RESULTS §23);
    several are one process each, and their worker processes ignore Ctrl-C."""
    from dw2v.config import ClusterConfig
    from dw2v.dask_cluster import client_for, workers_in_process

    with client_for(ClusterConfig(n_workers=1, threads_per_worker=2,
                                  dashboard_address=None)) as client:
        assert workers_in_process(client)
        assert list(client.nthreads().values()) == [2]
        assert client.submit(os.getpid, pure=False).result() == os.getpid()
        # the preload that makes worker processes ignore SIGINT is not run here
        assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    with client_for(ClusterConfig(n_workers=2, dashboard_address=None)) as client:
        assert not workers_in_process(client)
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids
        assert set(client.run(lambda: signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
                   .values()) == {True}


def test_the_embedded_cluster_is_one_worker_with_a_thread_per_core_unless_told() -> None:
    from dw2v.dask_cluster import embedded_layout

    assert embedded_layout(None, None, 8) == (1, 8)
    assert embedded_layout(4, None, 8) == (4, 1)
    assert embedded_layout(None, 2, 8) == (4, 2)
    assert embedded_layout(None, 16, 8) == (1, 16)
    assert embedded_layout(2, 3, 8) == (2, 3)


def test_the_dashboard_starts_once_a_run_has_lasted_a_while(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The embedded cluster listens at its dashboard address from the start, but Bokeh's
    pages (an import that holds the GIL for 0.4-0.5 s, RESULTS §24) come, with their link,
    only once the run has lasted DASHBOARD_AFTER seconds; a shorter run never starts them."""
    import urllib.error
    import urllib.request

    from dw2v import dask_cluster
    from dw2v.config import ClusterConfig

    monkeypatch.setattr(dask_cluster, "DASHBOARD_AFTER", 1.0)
    with dask_cluster.client_for(ClusterConfig(n_workers=1, dashboard_address=":0")) as client:
        link = client.cluster.dashboard_link
        assert link.endswith("/status")
        with pytest.raises(urllib.error.HTTPError):  # listening, no pages yet
            urllib.request.urlopen(link, timeout=10)
        assert "Dask dashboard" not in capsys.readouterr().err
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(link, timeout=10) as page:
                    body = page.read().decode()
                break
            except urllib.error.HTTPError:
                assert time.monotonic() < deadline, "the dashboard never started"
                time.sleep(0.2)
        assert "Dask" in body
        assert f"dw2v: Dask dashboard at {link}" in capsys.readouterr().err
    monkeypatch.setattr(dask_cluster, "DASHBOARD_AFTER", 120.0)
    with dask_cluster.client_for(ClusterConfig(n_workers=1, dashboard_address=":0")):
        pass
    assert "Dask dashboard" not in capsys.readouterr().err
