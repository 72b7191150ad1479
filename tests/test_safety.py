"""Nothing a user has is ever lost, and every bad setting is a message (issue 16).

Every case runs the real ``dw2v`` command as a subprocess against a real ``dask scheduler``
and two ``dask worker`` processes (or the embedded LocalCluster, where Ctrl-C's reach into the
workers matters), and asserts the exit code, the message, that no traceback is shown, and for
every data-loss case that the inputs and the old output are byte for byte unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import dw2v
from dw2v.atomic import lock_path, staging_dir
from dw2v.testing import dask_processes, tree_digest, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parent.parent
SMALL = ["--dim", "16", "--epochs", "1", "--min-count", "3", "--no-dashboard"]
#: Many short rounds, a checkpoint after each: a signal or a kill lands mid-run, after one.
ROUNDS = ["--dim", "16", "--epochs", "6", "--sync-every", "20000", "--no-dashboard",
          "--checkpoint-every", "0"]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


def dw2v_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``dw2v ARGS`` as a new process; its result."""
    return subprocess.run([sys.executable, "-m", "dw2v.cli", *args], capture_output=True,
                          text=True, env=_env(), timeout=timeout)


def start_cli(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """``dw2v ARGS`` in a session of its own with Ctrl-C enabled, as a terminal runs it (a
    background process of a shell without job control would ignore SIGINT)."""
    return subprocess.Popen([sys.executable, "-m", "dw2v.cli", *args], stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, env=_env(), start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def refused(done: subprocess.CompletedProcess[str], code: int, pattern: str) -> None:
    """The command failed with ``code`` and a one-line-per-fact message matching ``pattern``,
    and printed no traceback."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert re.search(r"^dw2v( \w+)?: error: ", done.stderr, re.M), done.stderr
    assert re.search(pattern, done.stderr), done.stderr


def checkpointed(model: Path) -> bool:
    return (staging_dir(model) / "checkpoints" / "latest.json").exists()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """``--scheduler ADDR`` of a real scheduler with two worker processes."""
    with dask_processes(tmp_path_factory.mktemp("dask"), n_workers=2) as (address, _, _):
        yield ["--scheduler", address]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Path:
    """A user's corpus directory: two Parquet shards and a notes file."""
    root = tmp_path_factory.mktemp("user") / "corpus"
    root.mkdir()
    for name in ("kjv-000.parquet", "kjv-001.parquet"):
        shutil.copy(sample_dir / name, root / name)
    (root / "NOTES.md").write_text("my corpus, do not lose it\n")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, corpus: Path,
            cluster: list[str]) -> Path:
    """A model trained once; tests copy it before they try to destroy it."""
    out = tmp_path_factory.mktemp("models") / "m"
    done = dw2v_cli("train", str(corpus), "-o", str(out), *SMALL, *cluster)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture()
def model(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "m"
    shutil.copytree(trained, copy)
    return copy


def only(parent: Path, names: set[str]) -> None:
    """``parent`` holds exactly ``names``: no staging directory, lock or temporary is left."""
    assert {p.name for p in parent.iterdir()} == names


# ------------------------------------------------------------------ the inputs are never lost

@pytest.mark.parametrize("command", ["train", "vocab"])
@pytest.mark.parametrize("where,problem", [
    ("same", "is the input"), ("inside", "lies inside the input"),
    ("above", "holds the input")])
def test_an_output_that_is_inside_or_above_an_input_is_refused(
        command: str, where: str, problem: str, corpus: Path, tmp_path: Path,
        cluster: list[str]) -> None:
    user = tmp_path / "user"
    shutil.copytree(corpus, user / "corpus")
    (user / "thesis.tex").write_text("years of work")
    before = tree_digest(user)
    out = {"same": user / "corpus", "inside": user / "corpus" / "model",
           "above": user}[where]
    done = dw2v_cli(command, str(user / "corpus"), "-o", str(out), "--overwrite",
                    "--no-dashboard", *cluster)
    refused(done, 2, rf"-o {re.escape(str(out))}: the output {problem} "
                     rf"{re.escape(str(user / 'corpus'))}")
    assert tree_digest(user) == before


def test_overwrite_refuses_a_directory_of_the_users_files(corpus: Path, tmp_path: Path,
                                                          cluster: list[str]) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "photo.jpg").write_bytes(b"\xff\xd8 precious")
    (mine / "vocab.parquet").write_bytes(b"not even dw2v's")  # a dw2v name is not enough
    before = tree_digest(mine)
    for command, args in (("train", SMALL), ("vocab", ["--no-dashboard"])):
        done = dw2v_cli(command, str(corpus), "-o", str(mine), "--overwrite", *args, *cluster)
        refused(done, 2, "--overwrite replaces only dw2v's own output, and this directory "
                         "holds files dw2v did not write: photo.jpg")
    assert tree_digest(mine) == before
    only(tmp_path, {"mine"})


def test_export_and_index_never_replace_their_model_or_a_users_file(model: Path,
                                                                    tmp_path: Path) -> None:
    before = tree_digest(model)
    refused(dw2v_cli("export", str(model), "--format", "parquet", "-o", str(model),
                     "--overwrite"), 2, "the output is the input")
    refused(dw2v_cli("export", str(model), "--format", "npy", "-o", str(tmp_path),
                     "--overwrite"), 2, "the output holds the input")
    refused(dw2v_cli("export", str(model), "--format", "word2vec-text", "-o",
                     str(model / "vectors.txt")), 2, "the output lies inside the input")
    refused(dw2v_cli("index", str(model), "-o", str(model), "--overwrite"), 2,
            "the output is the input")
    refused(dw2v_cli("index", str(model), "-o", str(tmp_path), "--overwrite"), 2,
            "the output holds the input")
    assert tree_digest(model) == before
    letter = tmp_path / "letter.txt"
    letter.write_text("Dear ...")
    refused(dw2v_cli("export", str(model), "--format", "word2vec-text", "-o", str(letter),
                     "--overwrite"), 2, "replaces only a vectors file")
    assert letter.read_text() == "Dear ..."
    album = tmp_path / "album"
    album.mkdir()
    (album / "song.mp3").write_bytes(b"ID3")
    refused(dw2v_cli("index", str(model), "-o", str(album), "--overwrite"), 2,
            "holds files dw2v did not write: song.mp3")
    assert (album / "song.mp3").read_bytes() == b"ID3"
    # their own outputs are replaced
    assert dw2v_cli("index", str(model)).returncode == 0
    done = dw2v_cli("index", str(model), "--overwrite")
    assert done.returncode == 0, done.stderr
    exported = tmp_path / "v.txt"
    for _ in range(2):
        done = dw2v_cli("export", str(model), "--format", "word2vec-text", "-o", str(exported),
                        "--overwrite")
        assert done.returncode == 0, done.stderr
    assert dw2v.load(exported).vectors.shape == dw2v.load(model).vectors.shape


# ------------------------------------------------------------------ the old model is kept

def test_a_run_that_diverges_leaves_the_old_model_as_it_was(
        model: Path, corpus: Path, tmp_path: Path, cluster: list[str]) -> None:
    before, inputs = tree_digest(model), tree_digest(corpus)
    done = dw2v_cli("train", str(corpus), "-o", str(model), "--overwrite", *ROUNDS,
                    "--alpha", "1e30", "--min-alpha", "1e30", *cluster)
    refused(done, 1, r"round \d+: \d+ (input |output )?vectors are NaN or inf: training "
                     r"diverged \(try a lower --alpha\)")
    assert "checkpoint is kept" not in done.stderr and "last good" not in done.stderr
    assert re.search(rf"(nothing to resume|the run is discarded).*{re.escape(str(model))} is "
                     "unchanged", done.stderr), done.stderr
    assert tree_digest(model) == before and tree_digest(corpus) == inputs
    only(tmp_path, {"m"})


@pytest.mark.parametrize("how,code,said,workers", [
    (signal.SIGINT, 130, "interrupted", "2"),
    (signal.SIGTERM, 143, r"terminated \(SIGTERM\)", "2"),
    (signal.SIGINT, 130, "interrupted", "1")])  # the worker in dw2v's own process
def test_an_interrupted_run_keeps_the_old_model_and_resumes(
        how: signal.Signals, code: int, said: str, workers: str, model: Path, corpus: Path,
        tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it, on the embedded
    LocalCluster of worker processes or of one worker in the driver's process) or SIGTERM
    mid-training: the old model is untouched, the run names the kept checkpoint, no worker
    prints a traceback; ``--resume`` then completes and swaps in."""
    before = tree_digest(model)
    log = tmp_path / "run.log"
    run = start_cli("train", str(corpus), "-o", str(model), "--overwrite", "--workers", workers,
                    *ROUNDS, log=log)
    try:
        wait_for(lambda: checkpointed(model) or run.poll() is not None, 120, "a checkpoint")
        assert run.poll() is None, log.read_text()
        os.killpg(run.pid, how)
        assert run.wait(timeout=60) == code, log.read_text()
    finally:
        run.kill()
    text = log.read_text()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert re.search(rf"dw2v: error: {said}; the checkpoint after round \d+ is kept in "
                     rf"{re.escape(str(staging_dir(model)))}: 'dw2v train -o "
                     rf"{re.escape(str(model))} --resume' continues from it", text), text
    assert tree_digest(model) == before
    # a plain rerun does not discard the unfinished run by accident
    refused(dw2v_cli("train", str(corpus), "-o", str(model), "--workers", "1", *ROUNDS), 2,
            "an unfinished run of this output is in .*continue it with --resume")
    done = dw2v_cli("train", "-o", str(model), "--resume", "--workers", "2", "--no-dashboard")
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr  # no settings given: nothing to warn
    assert tree_digest(model) != before and len(dw2v.load(model).meta["rounds"]) > 1
    only(tmp_path, {"m", "run.log"})


def test_ctrl_c_before_any_checkpoint_suggests_nothing_to_resume(
        model: Path, sample_dir: Path, tmp_path: Path) -> None:
    """Ctrl-C as soon as the run has begun (the vocabulary stage): no --resume hint, no
    staging directory left, the old model untouched."""
    before = tree_digest(model)
    log = tmp_path / "run.log"
    run = start_cli("train", str(sample_dir), "-o", str(model), "--overwrite", "--workers",
                    "1", *ROUNDS, log=log)
    try:
        wait_for(lambda: staging_dir(model).exists() or run.poll() is not None, 120,
                 "the staging directory")
        assert not checkpointed(model)
        os.killpg(run.pid, signal.SIGINT)
        assert run.wait(timeout=60) == 130, log.read_text()
    finally:
        run.kill()
    text = log.read_text()
    assert "Traceback" not in text, text
    assert f"interrupted; nothing to resume (no round had been checkpointed); {model} is " \
           "unchanged" in text, text
    assert "--resume" not in text
    assert tree_digest(model) == before
    only(tmp_path, {"m", "run.log"})


def test_a_killed_driver_leaves_the_old_model_and_resume_replaces_it(
        model: Path, corpus: Path, tmp_path: Path, cluster: list[str]) -> None:
    before = tree_digest(model)
    log = tmp_path / "run.log"
    run = start_cli("train", str(corpus), "-o", str(model), "--overwrite", *ROUNDS, *cluster,
                    log=log)
    try:
        wait_for(lambda: checkpointed(model) or run.poll() is not None, 120, "a checkpoint")
        run.send_signal(signal.SIGKILL)
        run.wait()
    finally:
        run.kill()
    assert tree_digest(model) == before
    done = dw2v_cli("train", "-o", str(model), "--resume", "--dim", "50", *cluster)
    assert done.returncode == 0, done.stderr
    # the lock died with the killed driver; --dim is named as it was typed, and not used
    assert "not used: --dim 50" in done.stderr, done.stderr
    assert dw2v.load(model).vectors.shape[1] == 16
    only(tmp_path, {"m", "run.log"})


def test_a_failure_while_the_cluster_closes_leaves_the_old_model(model: Path, corpus: Path,
                                                                  tmp_path: Path) -> None:
    """The model's last files (model.json's scores, the report) are written while the
    embedded LocalCluster closes: a benchmark file whose pairs are all unknown fails there,
    after training. The run says so and keeps the finished model aside; the old model is as
    it was until ``--resume`` swaps the finished one in."""
    before, inputs = tree_digest(model), tree_digest(corpus)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("zzqx\tqqzx\t3.0\n")
    done = dw2v_cli("train", str(corpus), "-o", str(model), "--overwrite", "--workers", "1",
                    *SMALL, "--similarity", str(pairs))
    refused(done, 1, rf"{re.escape(str(pairs))}: fewer than two word pairs in the vocabulary")
    assert f"the finished model is kept in {staging_dir(model)}" in done.stderr, done.stderr
    assert tree_digest(model) == before and tree_digest(corpus) == inputs
    done = dw2v_cli("train", "-o", str(model), "--resume", "--workers", "1", "--no-dashboard")
    assert done.returncode == 0, done.stderr
    assert tree_digest(model) != before and dw2v.load(model).vectors.shape[1] == 16
    only(tmp_path, {"m", "pairs.tsv"})


def test_init_from_the_output_itself_is_safe(model: Path, corpus: Path, sample_dir: Path,
                                             tmp_path: Path, cluster: list[str]) -> None:
    """``--init-from M -o M --overwrite``: a failing run leaves M as it was; a good one
    replaces M with the continued model (M's words kept, the new corpus's added)."""
    before = tree_digest(model)
    old = dw2v.load(model)
    more = tmp_path / "more"
    more.mkdir()
    shutil.copy(sample_dir / "kjv-003.parquet", more)
    done = dw2v_cli("train", str(more), "-o", str(model), "--init-from", str(model),
                    "--overwrite", *ROUNDS, "--alpha", "1e30", "--min-alpha", "1e30", *cluster)
    refused(done, 1, "NaN or inf")
    assert tree_digest(model) == before
    done = dw2v_cli("train", str(more), "-o", str(model), "--init-from", str(model),
                    "--overwrite", *SMALL, *cluster)
    assert done.returncode == 0, done.stderr
    new = dw2v.load(model)
    assert new.words[:len(old)] == old.words and len(new) > len(old)
    assert new.meta["init_from"] == str(model)
    only(tmp_path, {"m", "more"})


def test_a_second_run_into_the_same_output_is_refused(corpus: Path, tmp_path: Path,
                                                      cluster: list[str]) -> None:
    out = tmp_path / "m"
    log = tmp_path / "first.log"
    # long enough that the first still runs while the second ones start and are refused
    first = start_cli("train", str(corpus), "-o", str(out), *ROUNDS, "--epochs", "30",
                      *cluster, log=log)
    try:
        wait_for(lambda: lock_path(out).exists() or first.poll() is not None, 120, "the lock")
        for command, args in (("train", SMALL), ("vocab", ["--no-dashboard"])):
            second = dw2v_cli(command, str(corpus), "-o", str(out), "--overwrite", *args,
                              *cluster)
            refused(second, 2, rf"{re.escape(str(out))}: another dw2v job \(pid {first.pid}\) "
                               "is writing this output")
        assert first.wait(timeout=180) == 0, log.read_text()
    finally:
        first.kill()
    assert dw2v.load(out).vectors.shape[1] == 16
    only(tmp_path, {"m", "first.log"})


# ------------------------------------------------------------------ settings, before any work

@pytest.mark.parametrize("args,code,message", [
    (["--epochs", "2.5"], 2, "argument --epochs/--epoch/--iter: invalid int value: '2.5'"),
    (["--threads", "2"], 2, "unrecognized arguments: --threads 2"),
    (["--dim", "0"], 2, "--dim 0: must be at least 1"),
    (["--token-pattern", "(?<=a)b"], 2, r"--token-pattern \(\?<=a\)b: not a valid RE2 regex"),
    (["--token-pattern", r"(\w)\1"], 2, r"not a valid RE2 regex \(invalid escape sequence"),
    (["--seed", "-1"], 2, "--seed -1: must be an integer from 0 to 2\\^63 - 1"),
    (["--seed", "99999999999999999999"], 2, "--seed 99999999999999999999: must be an integer"),
    (["--dashboard", "here"], 2, "--dashboard here: must be HOST:PORT, :PORT or PORT"),
    (["--device", "gpu", "--dim", "2000"], 2,
     "--device gpu: --dim 2000 is above the GPU kernels' 1024; use a smaller --dim"),
    (["--device", "gpu", "--negative", "70"], 2,
     "--device gpu: --negative 70 is above the GPU kernels' 64"),
    (["--scheduler-file", "/nonexistent/scheduler.json"], 2,
     "--scheduler-file /nonexistent/scheduler.json: no such file"),
])
def test_bad_settings_stop_before_the_cluster_starts(args: list[str], code: int, message: str,
                                                     corpus: Path, tmp_path: Path) -> None:
    done = dw2v_cli("train", str(corpus), "-o", str(tmp_path / "m"), *args)
    refused(done, code, message)
    assert "dashboard at" not in done.stderr  # no cluster was started
    only(tmp_path, set())


@pytest.mark.parametrize("content,message", [
    ("[train]\nepochs = 2.5\n", r"\[train\] epochs = 2.5: must be an integer"),
    ('[train]\nvector_size = "100"\n', r'\[train\] vector_size = "100": must be an integer'),
    ("[vocab]\nmin_count = true\n", r"\[vocab\] min_count = true: must be an integer"),
    ("[train]\nwindows = 5\n", r"\[train\] has no setting 'windows'"),
    ("vocab = [1, 2]\n", "vocab must be a table"),
])
def test_a_bad_settings_file_names_the_file_and_the_key(content: str, message: str,
                                                        corpus: Path, tmp_path: Path) -> None:
    settings = tmp_path / "run.toml"
    settings.write_text(content)
    done = dw2v_cli("train", str(corpus), "-o", str(tmp_path / "m"), "--config", str(settings))
    refused(done, 2, re.escape(f"--config {settings}: ") + message)
    only(tmp_path, {"run.toml"})


@pytest.mark.parametrize("url,message", [
    ("memory://corpus/a.parquet", "memory://corpus/a.parquet: a memory:// filesystem lives in "
                                  "one process"),
    ("xyz://bucket/corpus", "xyz://bucket/corpus: unknown protocol 'xyz'"),
    pytest.param("s3://bucket/corpus", r"pip install 'dw2v\[s3\]'",
                 marks=pytest.mark.skipif(__import__("importlib").util.find_spec("s3fs")
                                          is not None, reason="s3fs is installed here")),
])
def test_inputs_that_cannot_be_read_are_named(url: str, message: str, tmp_path: Path) -> None:
    for command in ("train", "vocab"):
        done = dw2v_cli(command, url, "-o", str(tmp_path / "m"), "--no-dashboard")
        refused(done, 2, message)
    only(tmp_path, set())


def test_a_read_only_output_directory_is_refused(corpus: Path, tmp_path: Path) -> None:
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() == 0:  # root writes anywhere but on a read-only file system
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs",
                                  str(target)], capture_output=True)
        if mounted.returncode != 0:
            pytest.skip(f"running as root and cannot mount a read-only tmpfs: "
                        f"{mounted.stderr.decode().strip()}")
        expected = "is on a read-only file system"
    else:
        target.chmod(0o555)
        expected = "is not writable"
    try:
        for command in ("train", "vocab"):
            done = dw2v_cli(command, str(corpus), "-o", str(target / "m"), "--no-dashboard")
            refused(done, 2, rf"-o {re.escape(str(target / 'm'))}: cannot write the output: "
                             rf"{re.escape(str(target))} {expected}")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(target)], check=False)
        else:
            target.chmod(0o755)


def test_an_unreachable_scheduler_fails_within_the_timeout(corpus: Path,
                                                           tmp_path: Path) -> None:
    started = time.monotonic()
    done = dw2v_cli("train", str(corpus), "-o", str(tmp_path / "m"), "--scheduler",
                    "tcp://127.0.0.1:9", "--connect-timeout", "2")
    refused(done, 1, "--scheduler tcp://127.0.0.1:9: cannot reach the scheduler within 2 s")
    assert time.monotonic() - started < 60
    only(tmp_path, set())


def test_a_model_too_large_for_the_workers_is_refused_before_allocation(
        corpus: Path, tmp_path: Path, cluster: list[str]) -> None:
    done = dw2v_cli("train", str(corpus), "-o", str(tmp_path / "m"), "--dim", "20000000",
                    "--epochs", "1", *cluster)
    refused(done, 2, r"--dim 20000000: training [\d,]+ words x 20,000,000 dimensions needs "
                     r"about [\d.]+ GiB per worker .* more than the smallest worker's memory "
                     r"limit of [\d.]+ GiB")
    only(tmp_path, set())


def test_any_seed_in_range_trains(corpus: Path, tmp_path: Path, cluster: list[str]) -> None:
    done = dw2v_cli("train", str(corpus), "-o", str(tmp_path / "m"), *SMALL, "--seed",
                    str(2**63 - 1), *cluster)
    assert done.returncode == 0, done.stderr
    assert np.isfinite(dw2v.load(tmp_path / "m").vectors).all()


@pytest.mark.parametrize("command", [None, "vocab", "train", "export", "index", "similar",
                                     "analogy", "report", "eval"])
def test_every_help_works(command: str | None) -> None:
    done = dw2v_cli(*([command] if command else []), "--help")
    assert done.returncode == 0 and "usage: dw2v" in done.stdout, done.stderr
    assert "Traceback" not in done.stderr


def test_analogy_runs(model: Path) -> None:
    done = dw2v_cli("analogy", str(model), "lord", "god", "king", "--json")
    assert done.returncode == 0, done.stderr
    (query, answers), = json.loads(done.stdout).items()
    assert query == "lord god king" and len(answers) == 10
    refused(dw2v_cli("analogy", str(model), "lord", "god"), 2,
            "the following arguments are required: C")


def test_overwrite_looks_inside_dw2v_named_folders(corpus: Path, tmp_path: Path,
                                                   cluster: list[str]) -> None:
    """A folder of the user's that only shares a name with dw2v's (a PyTorch `checkpoints/`),
    or a user's file put inside a model's `report/`, is never taken for dw2v output."""
    project = tmp_path / "project"
    (project / "checkpoints").mkdir(parents=True)
    (project / "checkpoints" / "epoch-3.pt").write_bytes(b"weeks of GPU time")
    model = tmp_path / "m"
    assert dw2v_cli("train", str(corpus), "-o", str(model), *SMALL, *cluster).returncode == 0
    (model / "report" / "my-notes.txt").write_text("notes")
    for out, foreign in ((project, "checkpoints/epoch-3.pt"), (model, "report/my-notes.txt")):
        before = tree_digest(out)
        done = dw2v_cli("train", str(corpus), "-o", str(out), "--overwrite", *SMALL, *cluster)
        refused(done, 2, f"holds files dw2v did not write: {re.escape(foreign)}")
        assert tree_digest(out) == before
