"""The averaging rule (touched rows, weighted by touches; block momentum), the NaN stop, and
checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dw2v import merge
from dw2v.kernels.reference import block_average
from dw2v.merge import (Averaged, NumericalError, finalize, load_averaged, read_checkpoint,
                        weighted_sum, write_checkpoint)
from dw2v.shard_train import Params, TrainCounters, WorkerResult

COUNTERS = TrainCounters(10, 8, 20, 5.0, 100, 1.0)


def _result(W_in: np.ndarray, W_out: np.ndarray, t_in: list[int], t_out: list[int],
            name: str = "w") -> WorkerResult:
    return WorkerResult(Params(W_in.astype(np.float32), W_out.astype(np.float32)),
                        np.array(t_in, np.int64), np.array(t_out, np.int64), COUNTERS, name)


def test_rows_average_over_the_workers_that_touched_them_weighted_by_touches() -> None:
    previous = Params(np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32))
    a = _result(np.array([[1, 1], [2, 2], [9, 9], [0, 0]]), np.ones((4, 2)) * 3,
                t_in=[1, 3, 0, 0], t_out=[1, 1, 1, 0], name="a")
    b = _result(np.array([[5, 5], [6, 6], [7, 7], [0, 0]]), np.ones((4, 2)) * 5,
                t_in=[0, 1, 2, 0], t_out=[1, 1, 1, 0], name="b")
    averaged = finalize(weighted_sum([a, b]), previous, None, round_index=0).params
    np.testing.assert_allclose(averaged.W_in[0], [1, 1])        # only a touched row 0
    np.testing.assert_allclose(averaged.W_in[1], [3, 3])        # (3*2 + 1*6) / 4
    np.testing.assert_allclose(averaged.W_in[2], [7, 7])        # only b: a's 9 is ignored
    np.testing.assert_allclose(averaged.W_in[3], [0, 0])        # untouched: previous value
    np.testing.assert_allclose(averaged.W_out[:3], 4)
    np.testing.assert_allclose(averaged.W_out[3], 0)


def test_identical_workers_average_to_one_and_never_to_a_sum() -> None:
    rng = np.random.default_rng(0)
    W_in, W_out = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    one = _result(W_in, W_out, [3, 1, 0, 2, 5], [1, 1, 1, 1, 0])
    previous = Params(np.zeros((5, 3), np.float32), np.zeros((5, 3), np.float32))
    tree = weighted_sum([weighted_sum([one, one, one]), weighted_sum([one] * 5)])
    averaged = finalize(tree, previous, None, round_index=3).params
    touched_in = np.array([3, 1, 0, 2, 5]) > 0
    np.testing.assert_allclose(averaged.W_in[touched_in], W_in[touched_in], rtol=1e-6)
    np.testing.assert_allclose(averaged.W_in[~touched_in], 0)
    assert len(tree.counters) == 8


def test_nan_after_averaging_stops_with_the_round_named() -> None:
    bad = _result(np.array([[np.nan, 1.0], [1.0, 1.0]]), np.ones((2, 2)), [1, 1], [1, 1])
    previous = Params(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32))
    with pytest.raises(NumericalError, match="round 8: 1 input vectors are NaN or inf"):
        finalize(weighted_sum([bad]), previous, None, round_index=7)  # 0-based: the 8th round


def test_checkpoints_round_trip_and_keep_only_the_latest(tmp_path: Path) -> None:
    params = Params(np.ones((3, 2), np.float32), np.zeros((3, 2), np.float32))
    write_checkpoint(tmp_path, params, {"round": 1})
    write_checkpoint(tmp_path, Params(params.W_in * 2, params.W_out), {"round": 2})
    back, state = read_checkpoint(tmp_path)
    assert state == {"round": 2, "eta": 0.0}
    np.testing.assert_array_equal(back.W_in, params.W_in * 2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest.json",
                                                                          "round-00002"]


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    params = Params(np.ones((3, 2), np.float32), np.zeros((3, 2), np.float32))
    write_checkpoint(tmp_path, params, {"round": 4})
    calls = []
    real_save = np.save

    def failing_save(path: Path, array: np.ndarray) -> None:  # the disk fills on the 2nd file
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_save(path, array)

    monkeypatch.setattr(merge.np, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        write_checkpoint(tmp_path, Params(params.W_in * 5, params.W_out), {"round": 5})
    monkeypatch.undo()
    back, state = read_checkpoint(tmp_path)
    assert state == {"round": 4, "eta": 0.0}
    np.testing.assert_array_equal(back.W_in, params.W_in)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest.json",
                                                                          "round-00004"]


def test_no_checkpoint_reads_as_none(tmp_path: Path) -> None:
    assert read_checkpoint(tmp_path) is None


def _random_results(rng: np.random.Generator, workers: int, rows: int = 50,
                    dim: int = 4) -> list[WorkerResult]:
    results = []
    for i in range(workers):
        touches = rng.integers(0, 4, size=(2, rows)) * (rng.random((2, rows)) < 0.6)
        results.append(_result(rng.normal(size=(rows, dim)), rng.normal(size=(rows, dim)),
                               list(touches[0]), list(touches[1]), name=f"w{i}"))
    return results


@pytest.mark.parametrize("eta", [0.0, 0.5, 0.75])
def test_block_momentum_matches_the_numpy_reference_over_rounds(eta: float) -> None:
    rng = np.random.default_rng(int(eta * 100))
    rows, dim = 50, 4
    params = Params(rng.normal(size=(rows, dim)).astype(np.float32),
                    rng.normal(size=(rows, dim)).astype(np.float32))
    ref_in, ref_out = params.W_in.astype(np.float64), params.W_out.astype(np.float64)
    g_in = g_out = None
    momentum = None
    for round_index in range(3):
        results = _random_results(rng, workers=3, rows=rows, dim=dim)
        tree = weighted_sum([weighted_sum(results[:2]), results[2]])
        averaged = finalize(tree, params, momentum, round_index, eta)
        ref_in, g_in = block_average([(r.params.W_in, r.touches_in) for r in results], ref_in,
                                     g_in, eta)
        ref_out, g_out = block_average([(r.params.W_out, r.touches_out) for r in results],
                                       ref_out, g_out, eta)
        np.testing.assert_allclose(averaged.params.W_in, ref_in, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(averaged.params.W_out, ref_out, rtol=1e-5, atol=1e-5)
        if eta:
            np.testing.assert_allclose(averaged.momentum.W_in, g_in, rtol=1e-5, atol=1e-5)
        else:
            assert averaged.momentum is None
        params, momentum = averaged.params, averaged.momentum


def test_the_model_is_the_look_ahead_point_minus_the_momentum_step() -> None:
    rng = np.random.default_rng(5)
    previous = Params(np.zeros((50, 4), np.float32), np.zeros((50, 4), np.float32))
    results = _random_results(rng, workers=2)
    plain = finalize(weighted_sum(results), previous, None, 0, 0.0)
    ahead = finalize(weighted_sum(results), previous, None, 0, 0.5)
    # first round: G = D, look-ahead = previous + D + 0.5 D; the model is the plain average
    np.testing.assert_allclose(ahead.model().W_in, plain.params.W_in, atol=1e-6)
    np.testing.assert_allclose(ahead.params.W_in - plain.params.W_in,
                               0.5 * (plain.params.W_in - previous.W_in), atol=1e-6)


def test_a_checkpoint_keeps_the_momentum_and_the_round_named_by_keep_from(
        tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    previous = Params(np.zeros((50, 4), np.float32), np.zeros((50, 4), np.float32))
    averaged = finalize(weighted_sum(_random_results(rng, workers=2)), previous, None, 0, 0.75)
    for number in (3, 4, 5, 6):
        write_checkpoint(tmp_path, averaged, {"round": number}, keep_from=4)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "latest.json", "round-00004", "round-00006"]
    back = load_averaged(tmp_path / "checkpoints" / "round-00006")
    assert isinstance(back, Averaged) and back.eta == 0.75
    np.testing.assert_array_equal(back.params.W_out, averaged.params.W_out)
    np.testing.assert_array_equal(back.momentum.W_in, averaged.momentum.W_in)


def test_block_momentum_outside_zero_to_one_is_refused() -> None:
    previous = Params(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32))
    one = _result(np.ones((2, 2)), np.ones((2, 2)), [1, 1], [1, 1])
    with pytest.raises(ValueError, match="block momentum"):
        finalize(weighted_sum([one]), previous, None, 0, 1.0)


# ------------------------------------------------------------------ sparse row updates (v2)

@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("owners", [1, 2, 3])
def test_sparse_updates_average_like_the_dense_rule(workers: int, owners: int) -> None:
    """Each worker offers only the rows it touched; split by owner, averaged per owner, and
    added to every replica, they give the dense touched-row weighted average (eta = 0):
    rows touched by one worker, by several, and by none."""
    rng = np.random.default_rng(workers * 10 + owners)
    rows, dim = 40, 6
    previous = rng.normal(size=(rows, dim)).astype(np.float32)
    touches = rng.integers(0, 4, size=(workers, rows))
    touches[:, :5] = 0                      # rows no worker touched
    touches[:, 5:10] = 0
    touches[0, 5:10] = 3                    # rows only worker 0 touched
    touches[:, 10:15] = 2                   # rows every worker touched
    after = [previous + np.where(touches[w][:, None] > 0,
                                 rng.normal(size=(rows, dim)), 0).astype(np.float32)
             for w in range(workers)]
    dense = finalize(weighted_sum([_result(after[w], after[w], touches[w], touches[w])
                                   for w in range(workers)]),
                     Params(previous, previous), None, round_index=0).params.W_in
    updates = [merge.touched_rows(previous, after[w], touches[w]) for w in range(workers)]
    assert all(len(u.ids) == int((touches[w] > 0).sum()) for w, u in enumerate(updates))
    replicas = [previous.copy() for _ in range(workers)]
    sent = [merge.split_by_owner(u, owners) for u in updates]
    for owner in range(owners):
        mine = merge.average_updates([parts[owner] for parts in sent], rows)
        assert (merge.owner_of(mine.ids, owners) == owner).all()
        for replica in replicas:
            merge.apply_rows(replica, mine)
    for replica in replicas:
        np.testing.assert_allclose(replica, dense, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(replicas[0][:5], previous[:5])  # untouched: unchanged


def test_sparse_average_refuses_nan_and_handles_nothing_touched() -> None:
    ids = np.array([1, 4], np.int32)
    bad = merge.RowUpdate(ids, np.array([[np.nan, 0.0], [1.0, 1.0]], np.float32),
                          np.ones(2, np.float32))
    with pytest.raises(NumericalError, match="round 3: 1 vectors are NaN or inf"):
        merge.average_updates([bad], 5, round_index=2)
    empty = merge.RowUpdate(np.zeros(0, np.int32), np.zeros((0, 2), np.float32),
                            np.zeros(0, np.float32))
    nothing = merge.average_updates([empty, empty], 5)
    assert nothing.ids.shape == (0,) and nothing.delta.shape == (0, 2)
    with pytest.raises(ValueError, match="differ in length"):
        merge.RowUpdate(ids, np.zeros((1, 2), np.float32), np.ones(2, np.float32))
