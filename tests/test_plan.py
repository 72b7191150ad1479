"""Plans of the resident trainers: streams cut into rounds, re-planned over another number of
trainers without training a word twice or skipping one, the learning rate going on."""

from __future__ import annotations

import pytest

from dw2v.config import TrainConfig
from dw2v.plan import Segment, TrainPlan


def _covered(plan: TrainPlan, first_round: int = 0) -> list[tuple[int, int]]:
    """Every (slot, position) the plan trains from ``first_round`` on."""
    out = []
    for rank in range(plan.size):
        for r in range(first_round, plan.rounds):
            for piece in plan.round_pieces(rank, r):
                out += [(piece.slot, p) for p in range(piece.lo, piece.hi)]
    return out


def test_rounds_cut_each_stream_in_order() -> None:
    plan = TrainPlan.first([25, 10], period=10)
    assert plan.rounds == 3 and plan.total_words == 35
    assert plan.round_pieces(0, 2) == [Segment(0, 20, 25)]
    assert plan.round_pieces(1, 1) == []  # out of words: takes part, trains nothing
    assert [plan.active(r) for r in range(3)] == [2, 1, 1]
    assert plan.words_done(1) == 20 and plan.words_done(3) == 35


@pytest.mark.parametrize("done,trainers", [(0, 1), (1, 1), (1, 3), (2, 2), (3, 4), (1, 5)])
def test_a_replan_trains_what_is_left_exactly_once(done: int, trainers: int) -> None:
    plan = TrainPlan.first([57, 40, 61], period=10)
    trained: list[tuple[int, int]] = []
    for rank in range(plan.size):  # what the first `done` rounds trained
        for r in range(done):
            trained += [(p.slot, x) for p in plan.round_pieces(rank, r)
                        for x in range(p.lo, p.hi)]
    again = plan.replan(done, trainers)
    left = _covered(again)
    assert sorted(trained + left) == sorted(_covered(plan))  # all, once
    assert len(set(trained + left)) == len(trained + left)
    assert again.round_offset == done and again.words_before == len(trained)
    loads = [again.stream_words(r) for r in range(trainers)]
    assert max(loads) - min(loads) <= 1  # balanced


def test_the_learning_rate_goes_on_across_a_replan() -> None:
    config = TrainConfig(alpha=0.025, min_alpha=0.0001, scale_lr=False)
    plan = TrainPlan.first([100, 100], period=10)
    before = plan.learning_rates(config, 3)[1]  # the end of round 3 (of 0..)
    again = plan.replan(4, 1)
    assert again.learning_rates(config, 0)[0] == pytest.approx(before)
    assert again.learning_rates(config, again.rounds - 1)[1] == pytest.approx(0.0001)
    scaled = TrainConfig(alpha=0.025, min_alpha=0.0001)
    assert plan.learning_rates(scaled, 0)[2] == 2 and again.learning_rates(scaled, 0)[2] == 1


def test_a_plan_survives_its_checkpoint_form() -> None:
    plan = TrainPlan.first([57, 40, 61], period=10).replan(2, 2)
    assert TrainPlan.from_dict(plan.to_dict()) == plan


def test_hot_rows_are_the_words_expected_once_per_round() -> None:
    import numpy as np

    from dw2v.plan import hot_rows

    counts = np.array([500, 200, 100, 40, 10, 5])  # 855 tokens
    assert hot_rows(TrainConfig(), counts, period=10) == 3   # counts >= 85.5
    assert hot_rows(TrainConfig(), counts, period=100) == 5  # counts >= 8.55
    assert hot_rows(TrainConfig(hot_rows=2), counts, period=10) == 2
    assert hot_rows(TrainConfig(hot_rows=99), counts, period=10) == 6
