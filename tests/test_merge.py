"""The averaging rule of the sparse exchange (touched rows, weighted by touches), the NaN
stop, and checkpoints written in parts by the row owners."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dw2v import merge
from dw2v.errors import CheckpointError
from dw2v.kernels.reference import touched_average
from dw2v.merge import (NumericalError, Params, finish_checkpoint, latest_checkpoint,
                        load_params, read_checkpoint, write_checkpoint, write_part)


def _exchange(previous: np.ndarray, after: list[np.ndarray], touches: np.ndarray,
              owners: int) -> list[np.ndarray]:
    """Every worker's replica after one exchange among ``owners`` owners."""
    workers = len(after)
    updates = [merge.touched_rows(after[w], previous, touches[w]) for w in range(workers)]
    assert all(len(u.ids) == int((touches[w] > 0).sum()) for w, u in enumerate(updates))
    replicas = [a.copy() for a in after]
    bases = [previous.copy() for _ in range(workers)]
    sent = [merge.split_by_owner(u, owners) for u in updates]
    for owner in range(owners):
        mine = merge.average_updates([parts[owner] for parts in sent], len(previous))
        assert (merge.owner_of(mine.ids, owners) == owner).all()
        for replica, base in zip(replicas, bases):
            merge.settle(replica, base, mine)
    for replica, base in zip(replicas, bases):
        np.testing.assert_array_equal(replica, base)  # they agree again
    return replicas


def test_rows_average_over_the_workers_that_touched_them_weighted_by_touches() -> None:
    previous = np.zeros((4, 2), np.float32)
    a = np.array([[1, 1], [2, 2], [0, 0], [0, 0]], np.float32)
    b = np.array([[0, 0], [6, 6], [7, 7], [0, 0]], np.float32)
    touches = np.array([[1, 3, 0, 0], [0, 1, 2, 0]])
    for replica in _exchange(previous, [a, b], touches, owners=2):
        np.testing.assert_allclose(replica[0], [1, 1])        # only a touched row 0
        np.testing.assert_allclose(replica[1], [3, 3])        # (3*2 + 1*6) / 4
        np.testing.assert_allclose(replica[2], [7, 7])        # only b
        np.testing.assert_allclose(replica[3], [0, 0])        # untouched: previous value


def test_identical_workers_average_to_one_and_never_to_a_sum() -> None:
    rng = np.random.default_rng(0)
    previous = rng.normal(size=(5, 3)).astype(np.float32)
    touches = np.array([3, 1, 0, 2, 5])
    one = previous + np.where(touches[:, None] > 0, rng.normal(size=(5, 3)), 0).astype(
        np.float32)
    for replica in _exchange(previous, [one] * 6, np.array([touches] * 6), owners=3):
        np.testing.assert_allclose(replica, one, rtol=1e-6)


def test_nan_stops_before_anything_is_sent_and_after_averaging() -> None:
    previous = np.zeros((2, 2), np.float32)
    bad = np.array([[np.nan, 1.0], [1.0, 1.0]], np.float32)
    with pytest.raises(NumericalError, match="round 8: 1 input vectors are NaN or inf"):
        merge.touched_rows(bad, previous, np.array([1, 1]), round_index=7, name="input ")
    # untouched rows are not looked at: a NaN there is not this round's
    assert len(merge.touched_rows(bad, previous, np.array([0, 1])).ids) == 1


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("owners", [1, 2, 3])
def test_sparse_updates_average_like_the_plain_rule(workers: int, owners: int) -> None:
    """Each worker offers only the rows it touched; split by owner, averaged per owner, and
    settled on every replica, they give the NumPy touched-row weighted average: rows touched
    by one worker, by several, and by none."""
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
    expected = touched_average([(after[w], touches[w]) for w in range(workers)], previous)
    for replica in _exchange(previous, after, touches, owners):
        np.testing.assert_allclose(replica, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(replica[:5], previous[:5])  # untouched: unchanged


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


# ----------------------------------------------------------------------------- checkpoints

def _params(rows: int = 7, dim: int = 3, scale: float = 1.0) -> Params:
    W = np.arange(rows * dim, dtype=np.float32).reshape(rows, dim) * np.float32(scale)
    return Params(W, -W)


def test_checkpoints_round_trip_and_keep_only_the_latest(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, _params(), {"round": 1})
    write_checkpoint(tmp_path, _params(scale=2), {"round": 2})
    back, state = read_checkpoint(tmp_path)
    assert state == {"round": 2, "parts": 1}
    np.testing.assert_array_equal(back.W_in, _params(scale=2).W_in)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest.json",
                                                                          "round-00002"]


@pytest.mark.parametrize("owners", [2, 3])
def test_owners_write_their_rows_and_the_parts_fit_back_together(tmp_path: Path,
                                                                 owners: int) -> None:
    whole = _params(rows=8)
    (tmp_path / "checkpoints").mkdir()  # the driver makes it before the trainers start
    for rank in reversed(range(owners)):  # in any order
        assert latest_checkpoint(tmp_path) is None
        write_part(tmp_path, 5, "job", rank, owners,
                   Params(merge.owned(whole.W_in, rank, owners),
                          merge.owned(whole.W_out, rank, owners)))
    finish_checkpoint(tmp_path, 5, "job", owners, {"history": []})
    path = latest_checkpoint(tmp_path)
    assert path is not None and path.name == "round-00005"
    back = load_params(path)
    np.testing.assert_array_equal(back.W_in, whole.W_in)
    np.testing.assert_array_equal(back.W_out, whole.W_out)


def test_a_checkpoint_is_not_completed_with_a_part_missing(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, _params(), {"round": 3})
    whole = _params(scale=5)
    write_part(tmp_path, 4, "job", 0, 2, Params(whole.W_in[0::2], whole.W_out[0::2]))
    with pytest.raises(CheckpointError, match="parts missing: W_in.part-00001-of-00002"):
        finish_checkpoint(tmp_path, 4, "job", 2, {})
    back, state = read_checkpoint(tmp_path)
    assert state["round"] == 3
    np.testing.assert_array_equal(back.W_in, _params().W_in)


def test_completing_an_old_checkpoint_keeps_the_newer_ones_pending(tmp_path: Path) -> None:
    """Owners may already be writing a later round while the driver completes one."""
    whole = _params()
    (tmp_path / "checkpoints").mkdir()
    write_part(tmp_path, 6, "job", 0, 1, whole)
    write_part(tmp_path, 7, "job", 0, 1, whole)
    finish_checkpoint(tmp_path, 6, "job", 1, {})
    assert merge.pending_dir(tmp_path, 7, "job").is_dir()
    finish_checkpoint(tmp_path, 7, "job", 1, {})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest.json",
                                                                          "round-00007"]
    # a stale writer (an older round completed late) never moves latest backwards
    write_part(tmp_path, 5, "old", 0, 1, _params(scale=9))
    finish_checkpoint(tmp_path, 5, "old", 1, {})
    assert latest_checkpoint(tmp_path).name == "round-00007"


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    write_checkpoint(tmp_path, _params(), {"round": 4})
    calls = []
    real_save = np.save

    def failing_save(path: Path, array: np.ndarray) -> None:  # the disk fills on the 2nd file
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_save(path, array)

    monkeypatch.setattr(merge.np, "save", failing_save)
    with pytest.raises(OSError, match="No space left"):
        write_checkpoint(tmp_path, _params(scale=5), {"round": 5})
    monkeypatch.undo()
    back, state = read_checkpoint(tmp_path)
    assert state == {"round": 4, "parts": 1}
    np.testing.assert_array_equal(back.W_in, _params().W_in)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest.json",
                                                                          "round-00004"]


def test_a_stray_writer_never_makes_a_run_directory_again(tmp_path: Path) -> None:
    """A trainer of a run that ended (its staging directory swapped in and removed) cannot
    recreate it by writing a part."""
    gone = tmp_path / ".m.dw2v-partial"
    with pytest.raises(FileNotFoundError):
        write_part(gone, 3, "job", 0, 1, _params())
    assert not gone.exists()


def test_no_checkpoint_reads_as_none(tmp_path: Path) -> None:
    assert read_checkpoint(tmp_path) is None


def test_an_offer_is_the_touched_rows_grouped_by_owner() -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(size=(30, 4)).astype(np.float32)
    replica = base + rng.normal(size=(30, 4)).astype(np.float32)
    touches = rng.integers(0, 3, 30)
    whole = merge.touched_rows(replica, base, touches)
    np.testing.assert_array_equal(whole.ids, np.flatnonzero(touches))
    np.testing.assert_array_equal(whole.delta, (replica - base)[whole.ids])
    for owners in (1, 2, 3):
        parts = merge.offer(replica, base, touches, owners)
        expected = merge.split_by_owner(whole, owners)
        for k, (part, want) in enumerate(zip(parts, expected)):
            assert (merge.owner_of(part.ids, owners) == k).all()
            np.testing.assert_array_equal(part.ids, want.ids)
            np.testing.assert_array_equal(part.delta, want.delta)
            np.testing.assert_array_equal(part.touches, want.touches)
    # a row schedule: only the selected rows are offered
    select = np.zeros(30, bool)
    select[::4] = True
    chosen = merge.touched_rows(replica, base, touches, select=select)
    np.testing.assert_array_equal(chosen.ids, np.flatnonzero(touches * select))
