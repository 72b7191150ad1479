"""The training driver and engine on a LocalCluster: plans, stream slices, rounds, checkpoints,
the model files."""

from __future__ import annotations

import errno
import json
import math
import shutil
import re
from pathlib import Path

import numpy as np
import pytest
from distributed import Client

import dw2v
from dw2v.atomic import staging_dir
from dw2v import merge, shard_train
from dw2v.config import ClusterConfig, RunConfig, TrainConfig, VocabConfig
from dw2v.plan import (AUTO_MAX_WORDS, AUTO_MIN_WORDS, AUTO_ROUNDS, AUTO_VALUES_PER_WORD,
                       plan_shards, sync_period)
from dw2v.shard_train import SamplingTables, init_params, stream_slices, train_slices
from dw2v.token_shards import TokenShardWriter
from dw2v.vocab import load

#: Checkpoints after every round (the default is one every 120 s, so a short run has one).
EVERY_ROUND = ClusterConfig(checkpoint_every=0)


def test_plan_balances_tokens_and_keeps_input_order() -> None:
    shards = [{"index": i, "tokens": t, "path": f"s{i}"} for i, t in
              enumerate([100, 10, 60, 50, 40, 30])]
    plan = plan_shards(shards, 2)
    loads = [sum(s["tokens"] for s in slot) for slot in plan]
    assert sorted(loads) == [140, 150]
    assert all([s["index"] for s in slot] == sorted(s["index"] for s in slot) for slot in plan)
    assert len(plan_shards(shards[:1], 3)) == 3  # more slots than shards: some stay empty


def test_sync_period_auto_aims_at_a_number_of_averagings_within_bounds() -> None:
    auto, dim = TrainConfig(vector_size=100), 100
    assert TrainConfig().sync_every is None and TrainConfig(sync_every="auto").sync_every is None
    assert sync_period(TrainConfig(sync_every=50_000), [10**9, 10**9], 10) == 50_000  # as given
    # about AUTO_ROUNDS averagings per run: the longest slot sets the rounds
    assert sync_period(auto, [6_000_000, 5_000_000], 1000) == math.ceil(6e6 / AUTO_ROUNDS)
    assert sync_period(auto, [10**6] * 4, 1000) == AUTO_MIN_WORDS  # a small run: the floor
    assert sync_period(auto, [10**10] * 2, 1000) == AUTO_MAX_WORDS  # a large one: the cap
    # a large model: rounds long enough for what moving and averaging it costs
    assert sync_period(auto, [10**7] * 2, 200_000) == math.ceil(
        200_000 * dim / AUTO_VALUES_PER_WORD)
    assert sync_period(auto, [10**6], 1000) == AUTO_MAX_WORDS  # one worker: nothing to average


def _shard(path: Path, lengths: list[int]) -> Path:
    with TokenShardWriter(path) as writer:
        ids = np.arange(sum(lengths), dtype=np.int32)
        writer.append(ids, np.concatenate([[0], np.cumsum(lengths)]))
    return path


def test_stream_slices_cover_every_sentence_once_across_rounds(tmp_path: Path) -> None:
    shards = [_shard(tmp_path / "a", [3, 4, 5]), _shard(tmp_path / "b", [2, 2])]
    epochs, words, step = 2, 16 * 2, 5
    seen = []
    for lo in range(0, words, step):
        for part in stream_slices(shards, epochs, lo, lo + step):
            seen += [(part.epoch, part.shard, s) for s in range(part.s_lo, part.s_hi)]
    expected = [(e, str(p), s) for e in range(epochs) for p, n in zip(shards, [3, 2])
                for s in range(n)]
    assert seen == expected


@pytest.fixture(scope="module")
def sample_model(sample_dir: Path, client2: Client,
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train") / "model"
    config = RunConfig(train=TrainConfig(vector_size=32, epochs=2))  # sync_every: auto
    dw2v.train([str(sample_dir)], out, config, client=client2, keep_work=True)
    return out


def test_model_files_and_history(sample_model: Path) -> None:
    names = {p.name for p in sample_model.iterdir()}
    assert {"vectors.npy", "vocab.parquet", "model.json", "work", "checkpoints"} <= names
    meta = json.loads((sample_model / "model.json").read_text())
    rounds = meta["rounds"]
    assert [r["round"] for r in rounds] == list(range(len(rounds))) and len(rounds) >= 3
    assert sum(r["words"] for r in rounds) == meta["total_words"]
    assert rounds[-1]["loss"] < rounds[0]["loss"]
    assert all(r["lr_start"] >= r["lr_end"] for r in rounds)
    # each worker's learning rate is the schedule's times the workers training in the round
    assert all(r["lr_scale"] == sum(w > 0 for w in r["worker_words"]) for r in rounds)
    assert rounds[0]["lr_scale"] == 2
    assert rounds[0]["lr_start"] == pytest.approx(2 * 0.025)
    assert rounds[-1]["lr_end"] / rounds[-1]["lr_scale"] == pytest.approx(0.0001)
    for before, after in zip(rounds, rounds[1:]):  # one schedule across rounds
        assert after["lr_start"] / after["lr_scale"] == pytest.approx(
            before["lr_end"] / before["lr_scale"])
    assert meta["slots"] == 2 and len(set(sum((r["workers"] for r in rounds), []))) == 2
    # --sync-every auto: the small sample gets the shortest rounds (each the words whose
    # sentences start in it: the period up to a sentence)
    assert meta["sync_every"] == AUTO_MIN_WORDS
    assert all(max(r["worker_words"]) == pytest.approx(AUTO_MIN_WORDS, rel=0.02)
               for r in rounds[:-1])
    assert len(rounds) == math.ceil(max(meta["slot_words"]) / AUTO_MIN_WORDS)
    model = dw2v.load(sample_model)
    assert model.vectors.dtype == np.float32 and model.vectors.shape == (len(model), 32)
    assert "lord" in model and np.isfinite(model.vectors).all()
    assert not list(sample_model.glob(".*"))  # no temporaries left


def test_one_worker_one_round_equals_training_in_one_process(sample_dir: Path,
                                                             client1: Client,
                                                             tmp_path: Path) -> None:
    config = RunConfig(vocab=VocabConfig(min_count=20),
                       train=TrainConfig(vector_size=16, epochs=1, sync_every=10**9, seed=5))
    model = dw2v.train([str(sample_dir / "kjv-000.parquet")], tmp_path / "m", config,
                       client=client1, keep_work=True)
    vocab = load(tmp_path / "m")
    shards = sorted((tmp_path / "m" / "work").glob("shard-*"))
    direct, _ = train_slices(stream_slices(shards, 1, 0, 10**9),
                             init_params(len(vocab), 16, 5), SamplingTables.from_vocab(vocab),
                             config.train, lr_start=0.025, lr_end=0.0001, seed=5)
    np.testing.assert_array_equal(model.vectors, direct.W_in)  # one worker: nothing averaged


def test_resume_after_the_last_round_only_writes_the_model(sample_model: Path, client2: Client,
                                                           tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    staged = staging_dir(copy)  # where an interrupted run into copy left its work
    shutil.copytree(sample_model, staged)
    (staged / "model.json").unlink()
    before = np.load(staged / "vectors.npy")
    (staged / "vectors.npy").unlink()
    # the checkpoint keeps the round length auto chose; resuming uses it, not the one given
    latest = json.loads((staged / "checkpoints" / "latest.json").read_text())["checkpoint"]
    state = json.loads((staged / "checkpoints" / latest / "state.json").read_text())
    assert state["sync_every"] == AUTO_MIN_WORDS
    config = RunConfig(train=TrainConfig(vector_size=32, epochs=2, sync_every=150_000))
    model = dw2v.train([], copy, config, client=client2, resume=True)
    np.testing.assert_array_equal(model.vectors, before)  # no round ran again
    assert model.meta["sync_every"] == AUTO_MIN_WORDS
    assert model.meta["rounds"] == json.loads((sample_model / "model.json").read_text())[
        "rounds"]
    assert not (copy / "checkpoints").exists() and not (copy / "work").exists()
    assert not staged.exists()


def test_an_unfinished_run_is_not_overwritten_by_accident(tmp_path: Path,
                                                          client1: Client) -> None:
    (staging_dir(tmp_path / "m") / "checkpoints").mkdir(parents=True)
    with pytest.raises(dw2v.Dw2vError, match="an unfinished run of this output is in .*; "
                                             "continue it with --resume"):
        dw2v.train(["x"], tmp_path / "m", RunConfig(), client=client1)
    assert staging_dir(tmp_path / "m").exists()
    # --overwrite discards it only if it holds nothing but dw2v's files (a run killed before
    # its vocabulary was written has no marker file: it is dw2v's by its name)
    (staging_dir(tmp_path / "m") / "work").mkdir()
    (staging_dir(tmp_path / "m") / "mine.txt").write_text("not dw2v's")
    with pytest.raises(dw2v.Dw2vError, match="holds files dw2v did not write: mine.txt"):
        dw2v.train(["x"], tmp_path / "m", RunConfig(), client=client1, overwrite=True)
    assert (staging_dir(tmp_path / "m") / "mine.txt").exists()
    (staging_dir(tmp_path / "m") / "mine.txt").unlink()
    with pytest.raises(dw2v.Dw2vError, match="no Parquet or text file matches|no such file"):
        dw2v.train(["x"], tmp_path / "m", RunConfig(), client=client1, overwrite=True)
    assert not staging_dir(tmp_path / "m").exists()  # discarded; the new run had bad input


def test_resume_swaps_in_a_finished_model_that_was_not_swapped(sample_model: Path,
                                                               tmp_path: Path,
                                                               client1: Client) -> None:
    """A run whose model was complete when its swap failed (the output held a user's file):
    the finished model is never deleted, and --resume swaps it in once the output is clear."""
    target = tmp_path / "m"
    target.mkdir()
    (target / "mine.txt").write_text("the user's")
    shutil.copytree(sample_model, staging_dir(target), ignore=shutil.ignore_patterns(
        "checkpoints", "work"))
    before = np.load(staging_dir(target) / "vectors.npy")
    with pytest.raises(dw2v.Dw2vError, match="holds files dw2v did not write: mine.txt"):
        dw2v.train([], target, RunConfig(), client=client1, resume=True)
    assert (staging_dir(target) / "model.json").exists()
    (target / "mine.txt").unlink()
    model = dw2v.train([], target, RunConfig(), client=client1, resume=True)
    np.testing.assert_array_equal(model.vectors, before)
    assert not staging_dir(target).exists()


def test_unfinished_model_is_refused_with_a_hint(tmp_path: Path) -> None:
    (staging_dir(tmp_path / "m") / "checkpoints").mkdir(parents=True)
    with pytest.raises(dw2v.InputError, match=r"m: no such file or directory \(training has not "
                                              r"finished in .*\.m\.dw2v-partial; continue it "
                                              r"with dw2v train -o .*m --resume\)"):
        dw2v.load(tmp_path / "m")


def test_resume_without_checkpoint_is_an_error(tmp_path: Path, client1: Client) -> None:
    with pytest.raises(dw2v.Dw2vError, match="nothing to resume"):
        dw2v.train([], tmp_path, RunConfig(), client=client1, resume=True)


def test_checkpoints_follow_checkpoint_every_and_one_is_written_at_the_end(
        sample_dir: Path, client2: Client, tmp_path: Path) -> None:
    """``checkpoint_every`` 0 completes a checkpoint after every round; a long period only the
    one at the end; either way the vectors are the same (checkpoints never change training),
    and a checkpoint's parts (one per owner) hold the model."""
    train = TrainConfig(vector_size=16, epochs=1, sync_every=20_000, seed=4)
    inputs = [str(sample_dir / "kjv-000.parquet"), str(sample_dir / "kjv-001.parquet")]
    every = dw2v.train(inputs, tmp_path / "every", RunConfig(train=train, cluster=EVERY_ROUND),
                       client=client2, keep_work=True)
    rounds = len(every.meta["rounds"])
    assert rounds >= 3 and every.meta["checkpoints"] == list(range(1, rounds + 1))
    once = dw2v.train(inputs, tmp_path / "once",
                      RunConfig(train=train, cluster=ClusterConfig(checkpoint_every=10**6)),
                      client=client2, keep_work=True)
    assert once.meta["checkpoints"] == [rounds]
    np.testing.assert_array_equal(once.vectors, every.vectors)
    kept = tmp_path / "once" / "checkpoints" / f"round-{rounds:05d}"
    assert sorted(p.name for p in kept.iterdir()) == [
        "W_in.part-00000-of-00002.npy", "W_in.part-00001-of-00002.npy",
        "W_out.part-00000-of-00002.npy", "W_out.part-00001-of-00002.npy", "state.json"]
    np.testing.assert_array_equal(merge.load_params(kept).W_in, once.vectors)


@pytest.mark.parametrize("schedule", [{"overlap": True}, {"cold_every": 4, "hot_rows": 100}])
def test_overlapped_exchanges_and_row_schedules_train_and_end_in_agreement(
        sample_dir: Path, client2: Client, tmp_path: Path, schedule: dict) -> None:
    """A round's exchange beside the next round's training (one round stale), or the rare
    rows averaged every 4th round: the run completes, the replicas agree at the end (the last
    round averages every row: the final checkpoint's parts, one per worker, are the model),
    and the vectors make sense."""
    train = TrainConfig(vector_size=24, epochs=2, sync_every=20_000, seed=6, **schedule)
    model = dw2v.train([str(sample_dir)], tmp_path / "m", RunConfig(train=train),
                       client=client2, keep_work=True)
    rounds = model.meta["rounds"]
    assert len(rounds) > 10 and rounds[-1]["loss"] < rounds[0]["loss"]
    final = merge.latest_checkpoint(tmp_path / "m")
    np.testing.assert_array_equal(merge.load_params(final).W_in, model.vectors)
    assert "god" in [w for w, _ in model.most_similar("lord", topn=10)]
    if "cold_every" in schedule:  # fewer rows offered than with every row every round
        assert max(r["worker_rows"][0] for r in rounds[1:-1]) < rounds[-1]["worker_rows"][0]


def test_sampling_tables_are_built_once_per_vocabulary_file(sample_model: Path,
                                                             tmp_path: Path) -> None:
    """Each worker process builds the kernels' tables once per vocabulary file (its path, time
    and size): again for a file written anew, never from a stale copy."""
    import os

    tables = shard_train.sampling_tables
    first = tables(str(sample_model))
    assert tables(str(sample_model)) is first
    expected = SamplingTables.from_vocab(load(sample_model))
    np.testing.assert_array_equal(first.alias_idx, expected.alias_idx)
    np.testing.assert_array_equal(first.keep_prob, expected.keep_prob)
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(sample_model / "vocab.parquet", copy / "vocab.parquet")
    again = tables(str(copy))
    assert again is not first
    info = (copy / "vocab.parquet").stat()
    os.utime(copy / "vocab.parquet", ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    assert tables(str(copy)) is not again


def test_an_unreadable_token_shard_is_named_or_skipped(tmp_path: Path) -> None:
    from dw2v.errors import InputError
    from dw2v.token_shards import read_token_shard

    good, bad = _shard(tmp_path / "a", [3, 2]), _shard(tmp_path / "b", [2])
    (bad / "offsets.npy").write_bytes(b"not numpy")
    with pytest.raises(InputError, match="b: token-id shard unreadable"):
        stream_slices([good, bad], 1, 0, 100)
    skipped: list[str] = []
    slices = stream_slices([good, bad], 2, 0, 100, sizes=[5, 2], skipped=skipped)
    assert skipped == [str(bad)]
    assert [s.shard for s in slices] == [str(good), str(good)]
    with pytest.raises(InputError, match="outside the vocabulary of 3 words"):
        read_token_shard(good, vocab_size=3)


def test_two_jobs_on_one_cluster_at_once_do_not_disturb_each_other(
        sample_dir: Path, client2: Client, tmp_path: Path) -> None:
    """Two runs share the cluster at the same time (their task keys carry a run id): both
    complete, and each gives the vectors it gives alone (one thread per worker: every task is
    deterministic)."""
    from concurrent.futures import ThreadPoolExecutor

    config = RunConfig(vocab=VocabConfig(min_count=10),
                       train=TrainConfig(vector_size=16, epochs=1, sync_every=60_000, seed=9))
    inputs = [str(sample_dir / "kjv-000.parquet"), str(sample_dir / "kjv-001.parquet")]
    alone = dw2v.train(inputs, tmp_path / "alone", config, client=client2)
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(dw2v.train, inputs, tmp_path / name, config, client=client2)
                for name in ("first", "second")]
        first, second = (job.result(timeout=300) for job in jobs)
    for model in (first, second):
        assert model.words == alone.words
        np.testing.assert_array_equal(model.vectors, alone.vectors)


def test_parameters_that_diverge_stop_the_run_naming_the_round(
        sample_dir: Path, client1: Client, tmp_path: Path) -> None:
    """An absurd learning rate drives the parameters to inf/NaN: the run stops with the round
    named and writes no model."""
    config = RunConfig(vocab=VocabConfig(min_count=10),
                       train=TrainConfig(vector_size=16, epochs=1, sync_every=20_000,
                                         alpha=1e30, min_alpha=1e30))
    with pytest.raises(dw2v.Dw2vError, match=r"round \d+: \d+ (input|output) vectors are NaN"):
        dw2v.train([str(sample_dir / "kjv-000.parquet")], tmp_path / "m", config,
                   client=client1)
    assert not (tmp_path / "m" / "model.json").exists()


def test_a_checkpoint_write_that_fails_stops_and_resume_completes(
        sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills on the third checkpoint (ENOSPC from the writer, in-process workers so
    the writer can be replaced): the run stops naming the kept checkpoint, which is intact, and
    ``resume`` completes from it. ``benchmarks/fault_disk_full.py`` does the same on a real
    tmpfs."""
    from distributed import LocalCluster

    real = shard_train.write_part
    calls: list[int] = []

    def filling_disk(model_dir, number, job, rank, size, rows):
        calls.append(number)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(model_dir, number, job, rank, size, rows)

    config = RunConfig(vocab=VocabConfig(min_count=10),
                       train=TrainConfig(vector_size=16, epochs=1, sync_every=20_000, seed=2),
                       cluster=EVERY_ROUND)
    inputs = [str(sample_dir / "kjv-000.parquet")]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        monkeypatch.setattr(shard_train, "write_part", filling_disk)
        with pytest.raises(dw2v.Dw2vError, match=r"writing the checkpoint after round 3 failed "
                           r"\(\[Errno 28\] No space left on device\); training stopped") as err:
            dw2v.train(inputs, tmp_path / "m", config, client=client)
        assert re.match(r"the checkpoint after round 2 is kept in .*\.m\.dw2v-partial: free "
                        r"space, then 'dw2v train -o .*m --resume' continues from it",
                        err.value.__notes__[0])
        kept = staging_dir(tmp_path / "m") / "checkpoints"
        assert json.loads((kept / "latest.json").read_text())["round"] == 2
        assert np.isfinite(merge.load_params(kept / "round-00002").W_in).all()
        assert not [p for p in kept.iterdir() if ".tmp-" in p.name]
        monkeypatch.setattr(shard_train, "write_part", real)
        model = dw2v.train(inputs, tmp_path / "m", config, client=client, resume=True)
    assert len(model) > 0 and np.isfinite(model.vectors).all()
    assert [r["round"] for r in model.meta["rounds"]] == list(range(len(model.meta["rounds"])))


def test_trainers_compile_their_kernels_before_the_first_round(
        sample_dir: Path, client2: Client, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Each trainer warms its kernels up (an empty call, no word trained) and says so before
    its first round, so the driver's ETA and round 1's time leave the compilation out."""
    config = RunConfig(train=TrainConfig(vector_size=16, epochs=1, sync_every=50_000))
    with caplog.at_level("INFO", logger="dw2v.engine"):
        emb = dw2v.train([str(sample_dir)], tmp_path / "m", config, client=client2)
    messages = [r.getMessage() for r in caplog.records if r.name == "dw2v.engine"]
    ready = [i for i, m in enumerate(messages) if "kernels are ready on every worker" in m]
    first = next(i for i, m in enumerate(messages) if m.startswith("round 1/"))
    assert len(ready) == 1 and ready[0] < first
    # the warm-up trained nothing: the run equals one without it, word for word
    assert sum(r["words"] for r in emb.meta["rounds"]) == emb.meta["total_words"]


def test_the_exchange_warm_up_compiles_for_local_and_received_rows() -> None:
    from dw2v.kernels.averaging import accumulate_rows, settle_rows

    merge.warm_up(8)
    # the rows' changes: this worker's own (writable) and those received (read-only)
    for kernel, delta in ((accumulate_rows, 1), (settle_rows, 3)):
        assert {sig[delta].mutable for sig in kernel.signatures} == {True, False}


def test_a_progress_bar_clock_restarts_with_its_count_kept() -> None:
    import io

    from tqdm import tqdm

    from dw2v.dask_cluster import restart_clock

    bar = tqdm(total=1000, file=io.StringIO(), mininterval=0)
    bar.update(400)
    bar.start_t -= 100.0  # as if the first 400 took 100 s (compilation)
    restart_clock(bar)
    assert bar.n == 400 and bar.initial == 400
    assert bar._time() - bar.start_t < 5  # the rate counts from now, not from the start
    bar.update(100)
    assert bar.n == 500
    bar.close()


def test_one_parquet_file_of_row_groups_trains_on_every_worker(
        sample_dir: Path, client2: Client, tmp_path: Path) -> None:
    """A corpus of one Parquet file is cut along its row groups (at least four shards per
    worker), so that both workers train, and the file is counted once."""
    import pyarrow.parquet as pq

    table = pq.read_table(sorted(sample_dir.glob("*.parquet"))[0])
    pq.write_table(table, tmp_path / "one.parquet", row_group_size=-(-table.num_rows // 12))
    config = RunConfig(train=TrainConfig(vector_size=16, epochs=1, sync_every=20_000))
    emb = dw2v.train(str(tmp_path / "one.parquet"), tmp_path / "m", config, client=client2,
                     keep_work=True)
    manifest = json.loads((tmp_path / "m" / "work" / "manifest.json").read_text())
    assert len(manifest["shards"]) == 8
    report = json.loads((tmp_path / "m" / "vocab_report.json").read_text())
    assert report["files"] == 1 and report["documents"] == table.num_rows
    words = [sum(r["worker_words"][i] for r in emb.meta["rounds"]) for i in range(2)]
    assert min(words) > 0.3 * sum(words), words


def test_a_worker_trains_with_the_threads_it_has_unless_told(sample_dir: Path,
                                                             tmp_path: Path) -> None:
    """One thread knob: a worker of 2 threads runs its kernel in 2 Hogwild threads;
    ``threads`` (``--kernel-threads``) overrides it."""
    import dask
    from distributed import LocalCluster

    from dw2v.dask_cluster import QUIET_CLUSTER

    corpus = str(sorted(sample_dir.glob("*.parquet"))[0])
    with dask.config.set(QUIET_CLUSTER), \
            LocalCluster(n_workers=1, threads_per_worker=2, dashboard_address=None,
                         processes=True) as cluster, Client(cluster) as client:
        for asked, used in ((None, 2), (1, 1)):
            config = RunConfig(train=TrainConfig(vector_size=16, epochs=1, threads=asked))
            emb = dw2v.train(corpus, tmp_path / f"m{asked}", config, client=client)
            assert {t for r in emb.meta["rounds"] for t in r["worker_threads"]} == {used}
            assert emb.meta["settings"]["train"]["threads"] == asked
