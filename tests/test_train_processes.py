"""``dw2v train`` on a real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1:
it completes, survives a worker SIGKILLed mid-run, and resumes after the driver is SIGKILLed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dw2v
from dw2v.atomic import staging_dir
from dw2v.testing import dask_processes, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parent.parent
# Small rounds so that a run has many of them, and a kill lands in the middle; a checkpoint
# after every round, and a short exchange timeout, so that the tests do not wait long.
TRAIN = ["--dim", "32", "--epochs", "4", "--sync-every", "40000", "--no-dashboard",
         "--checkpoint-every", "0", "--exchange-timeout", "10"]


def _driver(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "dw2v.cli", "train", *args],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env)


def _resume(out: Path, scheduler_file: Path, log: Path) -> None:
    """``dw2v train -o OUT --resume`` on the given cluster, to the end (exit 0)."""
    resumed = _driver(["-o", str(out), "--scheduler-file", str(scheduler_file), "--resume"],
                      log)
    try:
        assert resumed.wait(timeout=300) == 0, log.read_text()
    finally:
        resumed.kill()


def _checkpoint_round(model_dir: Path) -> int:
    try:
        name = json.loads((staging_dir(model_dir) / "checkpoints" / "latest.json").read_text())[
            "checkpoint"]
    except (FileNotFoundError, json.JSONDecodeError):
        return -1
    return int(name.split("-")[1])


def _started(sample_dir: Path, out: Path, scheduler_file: Path, log: Path, rounds: int,
             *extra: str) -> subprocess.Popen[bytes]:
    """``dw2v train`` on the cluster, once a checkpoint after ``rounds`` rounds is complete."""
    driver = _driver([str(sample_dir), "-o", str(out), "--scheduler-file", str(scheduler_file),
                      *TRAIN, *extra], log)
    try:
        wait_for(lambda: _checkpoint_round(out) >= rounds or driver.poll() is not None, 240,
                 "no checkpoint")
    except BaseException:
        driver.kill()
        raise
    return driver


def _sane(model_dir: Path) -> dw2v.Embeddings:
    model = dw2v.load(model_dir)
    assert np.isfinite(model.vectors).all()
    assert "god" in [w for w, _ in model.most_similar("lord", topn=10)]
    return model


def test_train_completes_and_survives_a_killed_worker(sample_dir: Path, tmp_path: Path) -> None:
    with dask_processes(tmp_path / "dask", n_workers=2) as (_, scheduler_file, workers):
        out = tmp_path / "model"
        driver = _started(sample_dir, out, scheduler_file, tmp_path / "driver.log", 3)
        try:
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()
            workers[1].send_signal(signal.SIGKILL)  # mid-run: later rounds remain
            assert driver.wait(timeout=300) == 0, (tmp_path / "driver.log").read_text()
        finally:
            driver.kill()
        assert workers[1].poll() is not None and workers[0].poll() is None
    model = _sane(out)
    rounds = model.meta["rounds"]
    assert len(rounds) > 4
    # the last rounds ran on the surviving worker only, the words left re-planned onto it
    assert len(set(rounds[-1]["workers"])) == 1
    (restart,) = model.meta["restarts"]
    assert len(restart["lost_workers"]) == 1 and restart["lost_workers"][0] not in rounds[-1][
        "workers"]
    assert restart["words_trained_again"] == model.meta["words_trained_again"] >= 0
    assert sum(r["words"] for r in rounds) == model.meta["total_words"]  # each word once
    assert "restarting from the checkpoint after round" in (tmp_path / "driver.log").read_text()


def test_a_hung_worker_is_dropped_after_the_exchange_timeout(sample_dir: Path,
                                                              tmp_path: Path) -> None:
    """A worker that stops answering (SIGSTOP: alive to the scheduler, silent to its peers)
    is named by its peers within --exchange-timeout; the group restarts without it from the
    last checkpoint and the run completes."""
    with dask_processes(tmp_path / "dask", n_workers=3) as (_, scheduler_file, workers):
        out = tmp_path / "model"
        driver = _started(sample_dir, out, scheduler_file, tmp_path / "driver.log", 3,
                          "--exchange-timeout", "4")
        try:
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()
            workers[2].send_signal(signal.SIGSTOP)
            assert driver.wait(timeout=300) == 0, (tmp_path / "driver.log").read_text()
        finally:
            workers[2].send_signal(signal.SIGCONT)
            driver.kill()
    model = _sane(out)
    rounds = model.meta["rounds"]
    (restart,) = model.meta["restarts"]
    assert "within 4 s (hung or lost)" in restart["cause"], restart
    assert len(restart["lost_workers"]) == 1
    assert len(set(rounds[-1]["workers"])) == 2
    assert restart["lost_workers"][0] not in rounds[-1]["workers"]
    assert sum(r["words"] for r in rounds) == model.meta["total_words"]


def test_killed_driver_then_resume_completes(sample_dir: Path, tmp_path: Path) -> None:
    with dask_processes(tmp_path / "dask", n_workers=2) as (_, scheduler_file, _workers):
        out = tmp_path / "model"
        args = [str(sample_dir), "-o", str(out), "--scheduler-file", str(scheduler_file),
                *TRAIN]
        driver = _driver(args, tmp_path / "first.log")
        try:
            wait_for(lambda: _checkpoint_round(out) >= 2 or driver.poll() is not None, 240,
                      "no checkpoint")
        finally:
            driver.send_signal(signal.SIGKILL)
            driver.wait()
        killed_at = _checkpoint_round(out)
        assert not (out / "model.json").exists()
        with pytest.raises(dw2v.InputError, match="--resume"):
            dw2v.load(out)
        _resume(out, scheduler_file, tmp_path / "second.log")
    model = _sane(out)
    rounds = model.meta["rounds"]
    assert [r["round"] for r in rounds] == list(range(len(rounds)))
    assert len(rounds) > killed_at >= 2
    assert sum(r["words"] for r in rounds) == model.meta["total_words"]


def test_a_run_resumed_on_fewer_workers_re_plans_the_words_left(sample_dir: Path,
                                                                tmp_path: Path) -> None:
    """The driver is killed; one of the two workers goes too: ``--resume`` continues on the
    one left, the words left re-planned onto it, every word trained once."""
    with dask_processes(tmp_path / "dask", n_workers=2) as (_, scheduler_file, workers):
        out = tmp_path / "model"
        driver = _started(sample_dir, out, scheduler_file, tmp_path / "first.log", 2)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        kept = _checkpoint_round(out)
        workers[1].send_signal(signal.SIGKILL)
        workers[1].wait()
        wait_for(lambda: _alive_workers(scheduler_file) == 1, 60, "the scheduler to notice")
        _resume(out, scheduler_file, tmp_path / "second.log")
    model = _sane(out)
    rounds = model.meta["rounds"]
    assert len(rounds[kept - 1]["workers"]) == 2 and len(rounds[-1]["workers"]) == 1
    assert model.meta["workers"] == 1 and model.meta["restarts"] == []
    assert sum(r["words"] for r in rounds) == model.meta["total_words"]  # each word once


def _alive_workers(scheduler_file: Path) -> int:
    from distributed import Client

    with Client(scheduler_file=str(scheduler_file), timeout=10) as client:
        return len(client.nthreads())


def test_every_worker_lost_stops_after_the_timeout_and_resume_completes(
        sample_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    with dask_processes(tmp_path / "dask", n_workers=2) as (_, scheduler_file, workers):
        driver = _driver([str(sample_dir), "-o", str(out), "--scheduler-file",
                          str(scheduler_file), "--worker-timeout", "3", *TRAIN],
                         tmp_path / "first.log")
        try:
            wait_for(lambda: _checkpoint_round(out) >= 2 or driver.poll() is not None, 240,
                      "no checkpoint")
            assert driver.poll() is None, (tmp_path / "first.log").read_text()
            for worker in workers:
                worker.send_signal(signal.SIGKILL)
            started = time.monotonic()
            assert driver.wait(timeout=120) == 1, (tmp_path / "first.log").read_text()
            waited = time.monotonic() - started
        finally:
            driver.kill()
    log = (tmp_path / "first.log").read_text()
    assert "no workers for" in log and "--resume" in log, log
    assert waited >= 3
    kept = _checkpoint_round(out)
    # the message names the round that waited and the checkpoint that is really kept
    stopped = re.search(r"round (\d+) of \d+: no workers for \d+ s; training stopped\n"
                        r"dw2v: the checkpoint after round (\d+) is kept in .*: start workers, "
                        r"then 'dw2v train -o .* --resume' continues from it", log)
    assert stopped, log
    assert int(stopped.group(2)) == kept and int(stopped.group(1)) >= kept
    assert kept >= 2 and not (out / "model.json").exists()
    # a new cluster: the kept checkpoint is usable
    with dask_processes(tmp_path / "dask2", n_workers=2) as (_, scheduler_file, _workers):
        _resume(out, scheduler_file, tmp_path / "second.log")
    model = _sane(out)
    assert len(model.meta["rounds"]) > kept


@pytest.mark.parametrize("skip", [False, True])
def test_a_shard_that_becomes_unreadable_mid_run(sample_dir: Path, tmp_path: Path,
                                                 skip: bool) -> None:
    out = tmp_path / "model"
    with dask_processes(tmp_path / "dask", n_workers=2) as (_, scheduler_file, _workers):
        args = [str(sample_dir), "-o", str(out), "--scheduler-file", str(scheduler_file),
                *TRAIN, *(["--skip-bad-shards"] if skip else [])]
        driver = _driver(args, tmp_path / "driver.log")
        try:
            wait_for(lambda: _checkpoint_round(out) >= 1 or driver.poll() is not None, 240,
                      "no checkpoint")
            bad = staging_dir(out) / "work" / "shard-00001" / "ids.npy"
            bad.write_bytes(b"\x93NUMPY garbage: the disk went bad")
            code = driver.wait(timeout=300)
        finally:
            driver.kill()
    log = (tmp_path / "driver.log").read_text()
    if skip:
        assert code == 0, log
        model = dw2v.load(out)
        skipped = {s for r in model.meta["rounds"] for s in r["skipped_shards"]}
        assert skipped == {str(bad.parent)}
        assert sum(r["words"] for r in model.meta["rounds"]) < model.meta["total_words"]
    else:
        assert code == 1, log
        assert f"{bad.parent}: token-id shard unreadable" in log, log
        assert _checkpoint_round(out) >= 1 and not (out / "model.json").exists()
