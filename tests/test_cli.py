"""The ``dw2v vocab`` command: its summary, exit codes, and every bad input of the issue.

Each bad input must give a message naming the file and the problem, a non-zero exit code, and
no output directory (nor a staging directory) left behind.
"""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client

from dw2v.cli import _signals_stop_the_run, _sync_every, main
from dw2v.errors import Terminated
from dw2v.testing import tree_digest, write_parquet
from dw2v.vocab import load
from tests.test_ingest import write_invalid_utf8


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def scheduler(client2: Client) -> list[str]:
    """Run the command against the session's two-worker cluster (quicker than starting one)."""
    return ["--scheduler", client2.scheduler.address]


def _assert_nothing_written(parent: Path, keep: set[str]) -> None:
    assert {p.name for p in parent.iterdir()} == keep


def test_vocab_command_on_the_sample(sample_dir: Path, tmp_path: Path, scheduler: list[str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["vocab", str(sample_dir), "-o", str(tmp_path / "v"), *scheduler],
                          capsys)
    assert code == 0, err
    assert "documents   31,102" in out and "most frequent: the, and, of" in out
    assert {p.name for p in (tmp_path / "v").iterdir()} == {"vocab.parquet",
                                                            "vocab_report.json", "work"}
    assert len(load(tmp_path / "v")) > 5000


def test_options_reach_the_vocabulary(tmp_path: Path, scheduler: list[str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    write_parquet(tmp_path / "in" / "a.parquet", ["Apple apple APPLE pear Pear plum"] * 2,
                  column="body")
    code, _, err = _run(["vocab", str(tmp_path / "in"), "-o", str(tmp_path / "v"),
                         "--text-column", "body", "--no-lowercase", "--min-count", "2",
                         "--max-final-vocab", "10", "--sample", "0", *scheduler], capsys)
    assert code == 0, err
    vocab = load(tmp_path / "v")
    assert sorted(vocab.tokens.to_pylist()) == ["APPLE", "Apple", "Pear", "apple", "pear",
                                                "plum"]
    assert vocab.config.sample == 0 and vocab.config.max_final_vocab == 10


def test_embedded_local_cluster_and_real_exit_code(sample_dir: Path, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    done = subprocess.run([sys.executable, "-m", "dw2v.cli", "vocab",
                           str(sample_dir / "kjv-000.parquet"), "-o", str(tmp_path / "v"),
                           "--workers", "2", "--progress"], capture_output=True, text=True,
                          env=env, timeout=240)
    assert done.returncode == 0, done.stderr
    # a run this short ends before its dashboard would start (DASHBOARD_AFTER): no link
    assert "Dask dashboard" not in done.stderr
    assert "counting" in done.stderr and "encoding" in done.stderr  # the progress bars
    assert "on 2 workers" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "dw2v.cli", "vocab", str(tmp_path / "nope"),
                          "-o", str(tmp_path / "w")], capture_output=True, text=True, env=env,
                         timeout=120)
    assert bad.returncode == 1 and "nope: no such file or directory" in bad.stderr


def _bad(tmp_path: Path, kind: str) -> tuple[list[str], str]:
    """Build one bad input; return the input arguments and the expected message."""
    d = tmp_path / "in"
    d.mkdir()
    write_parquet(d / "good.parquet", ["a perfectly good document"] * 10)
    if kind == "no-match":
        return [str(tmp_path / "in" / "*.csv")], r"\*\.csv: no Parquet or text file matches"
    if kind == "not-parquet":
        (d / "fake.parquet").write_text("id,text\n1,hello\n")
        return [str(d)], r"fake\.parquet: not a Parquet file, or truncated"
    if kind == "truncated":
        data = (d / "good.parquet").read_bytes()
        (d / "cut.parquet").write_bytes(data[: len(data) - 20])
        return [str(d)], r"cut\.parquet: not a Parquet file, or truncated"
    if kind == "missing-column":
        write_parquet(d / "other.parquet", ["x"], column="body")
        return [str(d)], r"other\.parquet: no column 'text' \(columns present: 'doc_id', 'body'\)"
    if kind == "non-string":
        pq.write_table(pa.table({"text": pa.array([1.5, 2.5])}), d / "num.parquet")
        return [str(d)], r"num\.parquet: column 'text' is double, expected a string column"
    if kind == "all-null":
        write_parquet(d / "null.parquet", [None] * 5, write_statistics=False)
        return [str(d)], r"null\.parquet: column 'text' is entirely null \(5 rows\)"
    if kind == "invalid-utf8":
        write_invalid_utf8(d / "bytes.parquet")
        return [str(d)], r"bytes\.parquet: invalid UTF-8"
    if kind == "binary-garbage":
        (d / "noise.parquet").write_bytes(bytes(range(256)) * 64)
        return [str(d)], r"noise\.parquet: not a Parquet file, or truncated"
    if kind == "schema-differs":  # the same column, another type in one shard
        write_parquet(d / "more.parquet", ["more good text"] * 3)
        pq.write_table(pa.table({"doc_id": pa.array([1]), "text": pa.array([7])}),
                       d / "z-ints.parquet")
        return [str(d)], r"z-ints\.parquet: column 'text' is int64, expected a string column"
    if kind == "empty-vocab":
        return [str(d), "--min-count", "1000"], r"empty vocabulary: .*min_count=1000"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["no-match", "not-parquet", "truncated", "missing-column",
                                  "non-string", "all-null", "invalid-utf8", "empty-vocab",
                                  "binary-garbage", "schema-differs"])
def test_bad_input_is_named_and_leaves_nothing(kind: str, tmp_path: Path, scheduler: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    inputs, message = _bad(tmp_path, kind)
    code, out, err = _run(["vocab", *inputs, "-o", str(tmp_path / "out"), *scheduler], capsys)
    assert code == 1
    assert err.startswith("dw2v: error: ")
    assert re.search(message, err), err
    _assert_nothing_written(tmp_path, {"in"})


def test_empty_files_are_skipped_with_a_warning(tmp_path: Path, scheduler: list[str],
                                                capsys: pytest.CaptureFixture[str],
                                                caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "in"
    write_parquet(d / "a.parquet", ["word word word word word"])
    write_parquet(d / "b.parquet", [])
    (d / "c.parquet").write_bytes(b"")
    code, out, err = _run(["vocab", str(d), "-o", str(tmp_path / "out"), *scheduler], capsys)
    assert code == 0, err
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("b.parquet: empty file, skipped" in w for w in warnings)
    assert any("c.parquet: empty file, skipped" in w for w in warnings)
    assert "(2 empty, skipped)" in out
    assert [p.name for p in (tmp_path / "out" / "work").glob("shard-*")] == ["shard-00000"]


def test_only_empty_files_is_an_error(tmp_path: Path, scheduler: list[str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    write_parquet(tmp_path / "in" / "b.parquet", [])
    code, _, err = _run(["vocab", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                         *scheduler], capsys)
    assert code == 1 and "every input file is empty" in err
    _assert_nothing_written(tmp_path, {"in"})


def test_existing_output_is_refused_unless_overwrite(sample_dir: Path, tmp_path: Path,
                                                     scheduler: list[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    args = ["vocab", str(sample_dir / "kjv-002.parquet"), "-o", str(out), *scheduler]
    code, _, err = _run(args, capsys)
    assert code == 2 and "exists and is not empty; pass --overwrite" in err
    assert (out / "precious.txt").read_text() == "keep me"
    # --overwrite replaces only dw2v's own output: not a directory of the user's files
    code, _, err = _run([*args, "--overwrite"], capsys)
    assert code == 2 and "holds files dw2v did not write: precious.txt" in err
    assert (out / "precious.txt").read_text() == "keep me"
    (out / "precious.txt").unlink()
    code, _, err = _run(args, capsys)
    assert code == 0, err
    before = tree_digest(out)
    # a failing run with --overwrite keeps the old output as it was
    code, _, err = _run(["vocab", str(sample_dir / "kjv-002.parquet"), "-o", str(out),
                         "--min-count", "100000", "--overwrite", *scheduler], capsys)
    assert code == 1 and tree_digest(out) == before
    code, _, err = _run([*args, "--min-count", "2", "--overwrite"], capsys)
    assert code == 0, err
    assert tree_digest(out) != before and (out / "vocab.parquet").exists()
    _assert_nothing_written(tmp_path, {"out"})


def test_sync_every_takes_words_or_auto(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(tmp_path), "-o", str(tmp_path / "o"), "--sync-every", "often"])
    assert exit_.value.code == 2
    assert "expected a number of words or 'auto', not 'often'" in capsys.readouterr().err
    assert _sync_every("auto") is None and _sync_every("50_000") == 50_000


@pytest.mark.parametrize("args,message", [
    (["--min-count", "0"], "--min-count 0: must be at least 1"),
    (["--sample", "2"], "--sample 2: must be in [0, 1)"),
    (["--workers", "3", "--scheduler", "tcp://127.0.0.1:1"], "LocalCluster"),
])
def test_invalid_options_exit_2(args: list[str], message: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    write_parquet(tmp_path / "in" / "a.parquet", ["x"])
    code, _, err = _run(["vocab", str(tmp_path / "in"), "-o", str(tmp_path / "o"), *args],
                        capsys)
    assert code == 2 and message in err
    _assert_nothing_written(tmp_path, {"in"})


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["vocab", "x"])  # no -o
    assert exit_info.value.code == 2
    assert "-o/--output" in capsys.readouterr().err


def test_train_needs_inputs_unless_resuming(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "-o", "somewhere"])
    assert exit_info.value.code == 2
    assert "give at least one INPUT (or --resume)" in capsys.readouterr().err


def test_train_command_end_to_end(sample_dir: Path, tmp_path: Path, scheduler: list[str],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("lord\tgod\t9\nland\tsea\t4\nking\tqueen\t8\n")
    argv = ["train", str(sample_dir / "kjv-000.parquet"), "-o", str(tmp_path / "m"), "--dim",
            "16", "--epochs", "1", "--neighbours", "lord,zzzz", "--save-output-vectors",
            "--similarity", str(pairs), *scheduler]
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    assert "lord: " in out and "zzzz: not in the vocabulary" in out
    assert f"{pairs}: Spearman " in out
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["command"] == ["dw2v", *argv]
    assert list(meta["extras"]["neighbours"]) == ["lord", "zzzz"]
    assert "lord: " + ", ".join(n for n, _ in meta["extras"]["neighbours"]["lord"]) in out
    assert {p.name for p in (tmp_path / "m").iterdir()} == {
        "vocab.parquet", "vocab_report.json", "vectors.npy", "output_vectors.npy",
        "model.json", "report.html", "report"}
    code, _, err = _run(["train", "-o", str(tmp_path / "m"), "--resume", *scheduler], capsys)
    assert code == 1 and "nothing to resume" in err


@pytest.mark.parametrize("args,message", [
    (["--dim", "0"], "--dim 0: must be at least 1"),
    (["--window", "-1"], "--window -1: must be at least 1"),
    (["--sample", "2"], "--sample 2: must be in [0, 1)"),
    (["--sync-every", "10"], "--sync-every 10: must be at least 1000 words"),
    (["--negative", "0"], "--negative 0: must be at least 1"),
    (["--epochs", "0"], "--epochs 0: must be at least 1"),
    (["--alpha", "-0.1"], "--alpha -0.1: must be positive"),
    (["--checkpoint-every", "-1"], "--checkpoint-every -1: must be 0 or more seconds"),
    (["--exchange-timeout", "0"], "--exchange-timeout 0: must be positive"),
    (["--worker-timeout", "0"], "--worker-timeout 0: must be positive"),
    (["--seed", "-1"], "--seed -1: must be an integer from 0 to 2^63 - 1"),
    (["--seed", str(2**64)], f"--seed {2**64}: must be an integer from 0 to 2^63 - 1"),
    (["--dashboard", "localhost:http"], "--dashboard localhost:http: must be HOST:PORT"),
    (["--dashboard", ":70000"], "--dashboard :70000: must be HOST:PORT"),
    (["--token-pattern", "(?<=x)y"], "--token-pattern (?<=x)y: not a valid RE2 regex"),
    (["--token-pattern", r"(a)\1"], "--token-pattern (a)\\1: not a valid RE2 regex"),
    (["--max-token-bytes", "0"], "--max-token-bytes 0: must be from 1 to 10,000"),
    (["--connect-timeout", "-1"], "--connect-timeout -1: must be positive"),
    (["--vector-size", "0"], "--vector-size 0: must be at least 1"),  # an alias: as typed
    (["--size", "-3"], "--size -3: must be at least 1"),
    (["--analogies", "/nonexistent/q.txt"], "/nonexistent/q.txt: no such benchmark file"),
])
def test_train_invalid_options_exit_2(args: list[str], message: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    write_parquet(tmp_path / "in" / "a.parquet", ["x"])
    code, _, err = _run(["train", str(tmp_path / "in"), "-o", str(tmp_path / "o"), *args],
                        capsys)
    assert code == 2 and message in err
    _assert_nothing_written(tmp_path, {"in"})


def test_odd_but_valid_input_is_accepted_and_counted(tmp_path: Path, scheduler: list[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Zero-length documents (skipped and counted), a single huge token (dropped and counted:
    it is longer than --max-token-bytes), extra columns (ignored: only the text column is
    read) and a shard whose strings are large_string: none of them is an error."""
    d = tmp_path / "in"
    write_parquet(d / "a.parquet", ["", "the cat sat", "", "the dog sat"] * 5,
                  extra={"score": pa.array([1.5] * 20), "tags": pa.array([["x"]] * 20)})
    write_parquet(d / "b.parquet", ["x" * 2_000_000 + " the cat"])
    pq.write_table(pa.table({"text": pa.array(["the cat ran"] * 5, pa.large_string())}),
                   d / "c.parquet")
    code, out, err = _run(["vocab", str(d), "-o", str(tmp_path / "out"), "--min-count", "2",
                           *scheduler], capsys)
    assert code == 0, err
    vocab = load(tmp_path / "out")
    words = dict(zip(vocab.tokens.to_pylist(), vocab.counts.tolist()))
    assert words == {"the": 16, "cat": 11, "sat": 10, "dog": 5, "ran": 5}
    assert "10 empty: skipped" in out
    assert "(1 longer than 100 bytes: dropped)" in out


def test_gensim_and_fasttext_option_names_are_aliases(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["train", str(tmp_path), "-o", str(tmp_path / "o"), "--vector-size",
                         "40", "--ws", "3", "--neg", "7", "--iter", "2", "--lr", "0.05",
                         "--minCount", "2", "--print-config"], capsys)
    assert code == 0
    for line in ("vector_size = 40", "window = 3", "negative = 7", "epochs = 2",
                 "alpha = 0.05", "min_count = 2"):
        assert line in out, out


def test_help_shows_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("--window WINDOW, --ws WINDOW maximum context window (default: 5)",
                  "--model {skipgram,cbow} (default: skipgram)", "(default: 0.0001)",
                  "--seed SEED random seed (single-threaded workers give the same vectors "
                  "for a seed; Hogwild threads do not) (default: 1)",
                      "one is always written at the end) (default: 120.0)"):
        assert shown in text, shown


@pytest.mark.parametrize("how,raised", [("SIGINT", KeyboardInterrupt), ("SIGTERM", Terminated)])
def test_a_ctrl_c_whose_handler_runs_in_a_gc_callback_still_stops_the_run(
        how: str, raised: type[BaseException]) -> None:
    """A signal handled while the main thread runs a garbage collector's callback (Dask's GC
    diagnosis is one) raised where Python swallows exceptions, and the run went on to
    completion (seen in test_safety's Ctrl-C test with the worker in the driver's process).
    ``main`` hooks ``sys.unraisablehook`` so that it is delivered again."""
    signum = getattr(signal, how)
    fired: list[int] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and not fired:
            fired.append(1)
            signal.raise_signal(signum)  # its handler runs here, inside the callback

    others = gc.callbacks[:]  # Dask's, of this process's clusters: not disturbed here
    gc.callbacks[:] = [callback]
    try:
        with _signals_stop_the_run(verbose=2), pytest.raises(raised):  # 2: loggers kept
            gc.collect()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the interrupt delivered again lands here
                pass
    finally:
        gc.callbacks[:] = others
    assert fired == [1]
