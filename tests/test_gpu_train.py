"""GPU training (``dw2v.gpu_train``, ``dw2v.devices``): the device replica against the host one,
and ``dw2v train --device gpu|auto`` end to end, a mixed CPU/GPU cluster included. In Numba's
CUDA simulator where there is no GPU (``cudasim``: CI; tiny problems, it is slow), on the device
where there is one (``gpu``)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dw2v
from dw2v.config import TrainConfig
from dw2v.errors import NumericalError
from dw2v.kernels import cpu
from dw2v.merge import Params, RowUpdate, average_updates
from dw2v.shard_train import HostReplica, SamplingTables, stream_slices
from dw2v.testing import dask_processes, tree_digest, write_parquet
from dw2v.token_shards import TokenShardWriter, read_token_shard

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
pytestmark = [pytest.mark.cudasim if SIMULATED else pytest.mark.gpu,
              pytest.mark.filterwarnings("ignore:overflow encountered in scalar multiply"),
              pytest.mark.filterwarnings("ignore:overflow encountered in scalar add")]
REPO = Path(__file__).resolve().parent.parent
# the simulator runs some hundreds of words a second: tiny models, tiny corpora
TINY = ["--dim", "4", "--window", "2", "--negative", "2", "--min-count", "1", "--sample", "0",
        "--no-dashboard"]


@pytest.fixture(scope="module", autouse=True)
def device() -> None:
    from dw2v.devices import gpu_problem

    problem = gpu_problem()
    if problem is not None:
        pytest.skip(f"no GPU and the CUDA simulator is off: {problem}")


def _tables(vocab: int) -> SamplingTables:
    counts = np.arange(vocab, 0, -1, dtype=np.float64) * 10
    alias_prob, alias_idx = cpu.build_alias(counts ** 0.75 / (counts ** 0.75).sum())
    return SamplingTables(np.ones(vocab, np.float32), alias_prob, alias_idx)


def _pair(peers: int, vocab: int = 40, dim: int = 6, seed: int = 0):  # type: ignore[no-untyped-def]
    """The same parameters as a host replica and a device replica."""
    from dw2v.gpu_train import DeviceReplica

    rng = np.random.default_rng(seed)
    params = Params(rng.standard_normal((vocab, dim)).astype(np.float32),
                    rng.standard_normal((vocab, dim)).astype(np.float32))
    config = TrainConfig(vector_size=dim, negative=2, window=2)
    tables = _tables(vocab)
    return (HostReplica(params.copy(), peers, tables, config),
            DeviceReplica(params.copy(), peers, tables, config))


def _matrices(replica) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """Both replicas' matrices and bases, on the host."""
    if isinstance(replica, HostReplica):
        out = [replica.params.W_in, replica.params.W_out]
        return out + ([replica.base.W_in, replica.base.W_out] if replica.base else [])
    out = [replica.W_in, replica.W_out, *(replica.base or ())]
    return [replica._host(m) for m in out]


def _train_like(replica, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    """What a round does to a replica: some rows change, and their touches are counted
    (the same for every replica given generators in the same state)."""
    vocab = replica.vocab_size
    for m in range(2):
        rows = np.unique(rng.integers(0, vocab, size=vocab // 2))
        change = rng.standard_normal((len(rows), 6)).astype(np.float32) * 0.1
        counts = rng.integers(1, 5, size=len(rows))
        if isinstance(replica, HostReplica):
            matrix = (replica.params.W_in, replica.params.W_out)[m]
            matrix[rows] += change
            replica.touches[m][:] = 0
            replica.touches[m][rows] = counts
        else:
            xp = replica.xp
            matrix = (replica.W_in, replica.W_out)[m]
            matrix[xp.asarray(rows)] += xp.asarray(change)
            replica.touches[m][:] = 0
            replica.touches[m][xp.asarray(rows)] = xp.asarray(counts)


def _same_offers(a: list[list[RowUpdate]], b: list[list[RowUpdate]]) -> None:
    assert len(a) == len(b) == 2
    for parts_a, parts_b in zip(a, b):
        assert len(parts_a) == len(parts_b)
        for pa, pb in zip(parts_a, parts_b):
            np.testing.assert_array_equal(pa.ids, pb.ids)
            np.testing.assert_allclose(pa.delta, pb.delta, rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(pa.touches, pb.touches)


@pytest.mark.parametrize("peers", [2, 3])
def test_the_device_replica_offers_settles_and_trades_as_the_host_one(peers: int) -> None:
    """Round after round the device replica offers the same rows (by owner, with the same
    changes and touches), settles on an average and trades a late one to the same matrices
    and bases, as the host replica; the rows of the row schedule's mask too."""
    host, device = _pair(peers)
    rng_host, rng_device = np.random.default_rng(5), np.random.default_rng(5)
    select = np.zeros(host.vocab_size, bool)
    select[::3] = True
    for round_index, mask in enumerate([None, select, None]):
        _train_like(host, rng_host)
        _train_like(device, rng_device)
        offers = host.offer(round_index, mask), device.offer(round_index, mask)
        _same_offers(*offers)
        if mask is not None:
            assert all(select[p.ids].all() for parts in offers[1] for p in parts)
        # an average of this offer and a peer's made-up one, as the owners would send back
        peer = [[RowUpdate(p.ids, p.delta * -0.5, p.touches) for p in parts]
                for parts in offers[0]]
        averaged = [[average_updates([mine, theirs], host.vocab_size)
                     for mine, theirs in zip(parts, peer_parts)]
                    for parts, peer_parts in zip(offers[0], peer)]
        if round_index == 1:
            host.trade(offers[0], averaged)
            device.trade(offers[1], averaged)
        else:
            host.settle(averaged)
            device.settle(averaged)
        for a, b in zip(_matrices(host), _matrices(device)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    # the rows left out by the mask are still pending on both: offered now, alike
    for t in (*host.touches, *device.touches):
        t[:] = 0
    again = host.offer(3, None), device.offer(3, None)
    _same_offers(*again)
    for rank in range(peers):
        for a, b in zip(host.owned(rank).__dict__.values(), device.owned(rank).__dict__.values()):
            np.testing.assert_array_equal(a, b)


def test_a_nan_row_stops_the_device_replica_as_the_host_one() -> None:
    for peers in (1, 2):
        messages = []
        for replica in _pair(peers):
            _train_like(replica, np.random.default_rng(1))
            row = 3
            if isinstance(replica, HostReplica):
                replica.params.W_out[row, 0] = np.nan
                replica.touches[1][row] = 1
            else:
                replica.W_out[row, 0] = np.nan
                replica.touches[1][row] = 1
            with pytest.raises(NumericalError) as err:
                replica.check_finite(6) if peers == 1 else replica.offer(6, None)
            messages.append(str(err.value))
        assert messages[0] == messages[1]
        assert messages[0].startswith("round 7: 1 output vectors are NaN or inf")


@pytest.mark.parametrize("shared", [True, False], ids=["hogbatch", "per-pair"])
def test_the_device_replica_trains_a_token_shard(tmp_path: Path, shared: bool) -> None:
    """The CUDA kernels over a round's slices: every word read, the touched rows those of
    the shard's words, the loss of a fresh model, and the parameters moved; skip-gram
    batched (the CPU's default) or per pair, as configured."""
    rng = np.random.default_rng(2)
    vocab, dim = 12, 4
    lengths = rng.integers(3, 8, size=12)
    ids = rng.integers(0, vocab, size=lengths.sum()).astype(np.int32)
    with TokenShardWriter(tmp_path / "shard-0") as writer:
        writer.append(ids, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    from dw2v.gpu_train import DeviceReplica

    params = Params(((rng.random((vocab, dim)) - 0.5) / dim).astype(np.float32),
                    np.zeros((vocab, dim), np.float32))
    config = TrainConfig(vector_size=dim, window=2, negative=2, epochs=2,
                         shared_negatives=shared)
    replica = DeviceReplica(params.copy(), 1, _tables(vocab), config)
    assert replica.batched == shared
    slices = stream_slices([tmp_path / "shard-0"], 2, 0, 10**9)
    counters = replica.train(slices, lr_start=0.05, lr_end=0.01, seed=3, skipped=None,
                             reader=read_token_shard)
    assert counters.words_read == 2 * len(ids) == counters.words_kept  # keep_prob 1
    assert counters.examples > len(ids) and 0 < counters.loss <= np.log(2) + 1e-6
    touched = replica._host(replica.touches[0]) > 0
    assert set(np.flatnonzero(touched)) <= set(ids.tolist())
    assert replica.check_finite(0) == touched.sum() + (replica._host(replica.touches[1]) > 0).sum()
    after = replica.owned(0)
    assert not np.array_equal(after.W_in, params.W_in) and after.W_out.any()


def test_beyond_the_batched_kernel_the_device_replica_draws_per_pair(caplog) -> None:  # noqa: ANN001
    """A window or dimension the batched kernel's shared memory cannot hold trains with the
    per-pair kernel, and the log says so."""
    from dw2v.gpu_train import DeviceReplica

    vocab, dim = 8, 600  # at the default window 5
    params = Params(np.zeros((vocab, dim), np.float32), np.zeros((vocab, dim), np.float32))
    with caplog.at_level(logging.INFO, logger="dw2v.gpu_train"):
        replica = DeviceReplica(params, 1, _tables(vocab), TrainConfig(vector_size=dim))
    assert not replica.batched
    assert "exceed the batched skip-gram kernel" in caplog.text


def _corpus(root: Path, files: int, sentences: int) -> Path:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(20)]
    root.mkdir()
    for f in range(files):
        texts = [" ".join(rng.choice(words, size=8)) for _ in range(sentences)]
        write_parquet(root / f"part-{f}.parquet", texts)
    return root


def _cli(*args: str, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dw2v.cli", "train", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": _path(), **(env or {})})


def _path() -> str:
    """The checkout first on the subprocesses' path, the rest kept (a machine without network
    has the wheels of benchmarks/gpu_wheels.sh there)."""
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


@pytest.mark.parametrize("model", ["skipgram", "cbow"])
def test_train_device_gpu_end_to_end(model: str, tmp_path: Path) -> None:
    """``dw2v train --device gpu`` with no scheduler: a cluster of one worker per GPU (the
    simulator's one), the model written, finite and trained, the device in model.json."""
    corpus = _corpus(tmp_path / "corpus", 2, 10)
    out = tmp_path / "model"
    done = _cli(str(corpus), "-o", str(out), "--device", "gpu", "--model", model, *TINY,
                "--epochs", "2", "-v")
    assert done.returncode == 0, done.stderr
    assert "trains on the GPU" in done.stderr
    meta = json.loads((out / "model.json").read_text())
    assert set(meta["devices"].values()) == {"gpu"}, meta
    model = dw2v.load(out)
    assert np.isfinite(model.vectors).all() and len(model.vectors) == 20
    assert meta["rounds"][-1]["words"] > 0


@pytest.mark.cluster
@pytest.mark.timeout(600)
def test_a_cluster_of_a_cpu_and_a_gpu_worker(tmp_path: Path) -> None:
    """``--device auto`` on a real ``dask scheduler`` with a GPU worker and a CPU-only one:
    each trains on its own device, they average through the same exchange for several rounds,
    and the model is sane; ``--device gpu`` on that cluster is refused before any work,
    naming the worker without a GPU, and the model stays as it was."""
    gpu_env = {"NUMBA_ENABLE_CUDASIM": "1"} if SIMULATED else {}
    cpu_env = {"NUMBA_ENABLE_CUDASIM": "0", "CUDA_VISIBLE_DEVICES": ""}
    corpus = _corpus(tmp_path / "corpus", 2, 70)  # 560 words a file: 2 rounds of 1,000
    out = tmp_path / "model"
    with dask_processes(tmp_path / "dask", 2, worker_env=[gpu_env, cpu_env]) as (_, sf, _w):
        done = _cli(str(corpus), "-o", str(out), "--scheduler-file", str(sf), "--device",
                    "auto", *TINY, "--epochs", "2", "--sync-every", "1000",
                    "--checkpoint-every", "0", "-v")
        assert done.returncode == 0, done.stderr
        meta = json.loads((out / "model.json").read_text())
        assert sorted(meta["devices"].values()) == ["cpu", "gpu"], meta
        history = meta["rounds"]
        assert len(history) >= 2 and all(sum(r["worker_rows"]) > 0 for r in history)
        model = dw2v.load(out)
        assert np.isfinite(model.vectors).all() and len(model.vectors) == 20
        before = tree_digest(out)
        cpu_worker = next(w for w, d in meta["devices"].items() if d == "cpu")
        refused = _cli(str(corpus), "-o", str(out), "--overwrite", "--scheduler-file", str(sf),
                       "--device", "gpu", *TINY)
    assert refused.returncode == 2, refused.stderr
    assert "--device gpu: no CUDA GPU is visible" in refused.stderr
    assert f"(on 1 of 2 workers: {cpu_worker})" in refused.stderr
    assert tree_digest(out) == before


def test_device_gpu_without_a_gpu_stops_before_the_cluster_starts(tmp_path: Path) -> None:
    if not SIMULATED:
        pytest.skip("this machine has a GPU")
    corpus = _corpus(tmp_path / "corpus", 1, 5)
    done = _cli(str(corpus), "-o", str(tmp_path / "model"), "--device", "gpu", *TINY,
                env={"NUMBA_ENABLE_CUDASIM": "0"})
    assert done.returncode == 2, done.stderr
    assert "dw2v: error: --device gpu: no CUDA GPU is visible" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "model").exists()


def test_the_gpu_check_script_runs_its_steps(tmp_path: Path) -> None:
    """``benchmarks/gpu_check.sh --smoke`` (no install, a tiny corpus, in the simulator): the
    one-command GPU check stays runnable for the day a GPU is lent, and writes its report."""
    if not SIMULATED:
        pytest.skip("on a GPU, gpu_check.sh runs these tests itself")
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--smoke"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DW2V_NO_INSTALL": "1", "PYTHON": sys.executable,
                               "DW2V_GPU_OUT": str(tmp_path), "PYTHONPATH": _path()})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gpu_check: done" in done.stdout and "dw2v gpu" in done.stdout
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["runs"][0]["devices"] == ["gpu"] and report["runs"][0]["words"] > 0
    assert report["bandwidth"]["bytes_per_s"] > 0
