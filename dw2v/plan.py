"""Which words each resident trainer trains, round by round, and how that is re-planned when
the group changes (a worker lost, or a run resumed on another cluster).

A *slot* is one list of token-id shards, planned once per run (``plan_shards``); its stream is
its shards in order, epoch after epoch, and a position in it is a word. A trainer trains a list
of :class:`Segment` s (position ranges of slots), one after another, ``period`` words per
round. At the start every trainer has one whole slot; a re-plan cuts what is left of every
trainer's segments into equal pieces for the trainers there are now, so no word is trained
twice or skipped and the learning-rate schedule goes on where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dw2v.config import TrainConfig


@dataclass(frozen=True)
class Segment:
    """Positions ``[lo, hi)`` of slot ``slot``'s stream."""

    slot: int
    lo: int
    hi: int

    @property
    def words(self) -> int:
        return self.hi - self.lo


@dataclass(frozen=True)
class TrainPlan:
    """The segments of each trainer (by rank), the round length, and where in the whole run
    this plan starts (``round_offset`` rounds and ``words_before`` words already trained)."""

    assignments: tuple[tuple[Segment, ...], ...]
    period: int
    total_words: int
    round_offset: int = 0
    words_before: int = 0

    @classmethod
    def first(cls, slot_words: Sequence[int], period: int) -> TrainPlan:
        """One whole slot per trainer."""
        return cls(tuple((Segment(i, 0, w),) for i, w in enumerate(slot_words)), period,
                   sum(slot_words))

    @property
    def size(self) -> int:
        return len(self.assignments)

    def stream_words(self, rank: int) -> int:
        return sum(s.words for s in self.assignments[rank])

    @property
    def rounds(self) -> int:
        """Rounds this plan takes (every trainer takes part in each, words left or not)."""
        longest = max((self.stream_words(r) for r in range(self.size)), default=0)
        return max(math.ceil(longest / self.period), 1)

    def words_done(self, rounds: int) -> int:
        """Words of the whole run trained after ``rounds`` rounds of this plan."""
        return self.words_before + sum(min(rounds * self.period, self.stream_words(r))
                                       for r in range(self.size))

    def active(self, round_index: int) -> int:
        """Trainers with words left in round ``round_index`` of this plan."""
        return sum(round_index * self.period < self.stream_words(r) for r in range(self.size))

    def pieces(self, rank: int, lo: int, hi: int) -> list[Segment]:
        """Positions ``[lo, hi)`` of trainer ``rank``'s stream as slot ranges, in order."""
        out, start = [], 0
        for seg in self.assignments[rank]:
            a, b = max(lo, start), min(hi, start + seg.words)
            if a < b:
                out.append(Segment(seg.slot, seg.lo + a - start, seg.lo + b - start))
            start += seg.words
        return out

    def round_pieces(self, rank: int, round_index: int) -> list[Segment]:
        return self.pieces(rank, round_index * self.period, (round_index + 1) * self.period)

    def learning_rates(self, config: TrainConfig, round_index: int) -> tuple[float, float, int]:
        """The schedule's rate at the start and end of round ``round_index`` (linear in the
        words of all trainers), times the scale (``scale_lr``: the trainers with words left,
        since averaging moves a row every one touched by the mean of their updates)."""
        scale = max(self.active(round_index), 1) if config.scale_lr else 1
        lo, hi = self.words_done(round_index), self.words_done(round_index + 1)
        return (scale * learning_rate(config, lo, self.total_words),
                scale * learning_rate(config, hi, self.total_words), scale)

    def replan(self, rounds_done: int, trainers: int) -> TrainPlan:
        """What is left after ``rounds_done`` rounds, cut into ``trainers`` equal streams."""
        left = [seg for r in range(self.size)
                for seg in self.pieces(r, rounds_done * self.period, self.stream_words(r))]
        total = sum(s.words for s in left)
        cuts = [round(total * k / trainers) for k in range(trainers + 1)]
        assignments, start = [], 0
        starts = []
        for seg in left:
            starts.append(start)
            start += seg.words
        for k in range(trainers):
            mine = []
            for seg, s in zip(left, starts):
                a, b = max(cuts[k], s), min(cuts[k + 1], s + seg.words)
                if a < b:
                    mine.append(Segment(seg.slot, seg.lo + a - s, seg.lo + b - s))
            assignments.append(tuple(mine))
        return TrainPlan(tuple(assignments), self.period, self.total_words,
                         self.round_offset + rounds_done, self.words_done(rounds_done))

    def to_dict(self) -> dict[str, Any]:
        return {"assignments": [[[s.slot, s.lo, s.hi] for s in a] for a in self.assignments],
                "period": self.period, "total_words": self.total_words,
                "round_offset": self.round_offset, "words_before": self.words_before}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainPlan:
        return cls(tuple(tuple(Segment(*map(int, s)) for s in a) for a in data["assignments"]),
                   int(data["period"]), int(data["total_words"]), int(data["round_offset"]),
                   int(data["words_before"]))


def hot_rows(config: TrainConfig, counts: np.ndarray, period: int) -> int:
    """How many of the most frequent rows the exchange averages every round: as given, or
    (auto) the words expected at least once in a worker's round of ``period`` words."""
    if config.hot_rows is not None:
        return min(config.hot_rows, len(counts))
    return int((counts >= counts.sum() / max(period, 1)).sum())


def learning_rate(config: TrainConfig, done: float, total: float) -> float:
    """The linear schedule from ``alpha`` to ``min_alpha`` over the run's words."""
    return config.alpha - (config.alpha - config.min_alpha) * min(done / max(total, 1), 1.0)


def plan_shards(shards: Sequence[dict[str, Any]], slots: int) -> list[list[dict[str, Any]]]:
    """Assign shards to slots, balanced by tokens (largest first onto the lightest slot);
    each slot keeps its shards in input order."""
    loads = [0] * slots
    plan: list[list[dict[str, Any]]] = [[] for _ in range(slots)]
    for shard in sorted(shards, key=lambda s: (-s["tokens"], s["index"])):
        slot = min(range(slots), key=lambda i: (loads[i], i))
        plan[slot].append(shard)
        loads[slot] += shard["tokens"]
    return [sorted(p, key=lambda s: s["index"]) for p in plan]


#: ``sync_every`` unset (auto): rounds of the longest slot's words / AUTO_ROUNDS, so that a run
#: averages about this many times whatever its size. On the development corpus four workers
#: kept 78.5 % of one worker's analogy accuracy with 4 averagings (1,000,000-word rounds), 101 %
#: with 122 (25,000 words) and 98 % with 128 (23,686 words); benchmarks/RESULTS.md §3f.
AUTO_ROUNDS = 128
#: ... but rounds of at least AUTO_MIN_WORDS words, and of at least one word per
#: AUTO_VALUES_PER_WORD values of a vector matrix: a round's exchange moves up to every row of
#: both matrices (on Zipfian text the negatives touch most output rows in a round), about 45 ms
#: for 30,000 x 100 on this project's 2-core machine against about 4 us per word of training,
#: so that rounds of 125,000 words for 30,000 x 100 keep the exchange near a tenth of a round
#: (benchmarks/RESULTS.md §10) ...
AUTO_MIN_WORDS = 20_000
AUTO_VALUES_PER_WORD = 24
#: ... and at most this many: a large corpus keeps long, cheap rounds (and one worker, with
#: nothing to average, rounds of this size: they only mark checkpoints).
AUTO_MAX_WORDS = 1_000_000


def sync_period(config: TrainConfig, slot_words: Sequence[int], vocab_size: int) -> int:
    """Words each slot trains per round: ``config.sync_every``, or when unset (auto) about
    AUTO_ROUNDS averagings per run within [AUTO_MIN_WORDS, AUTO_MAX_WORDS] (see above)."""
    if config.sync_every is not None:
        return config.sync_every
    if len(slot_words) < 2:
        return AUTO_MAX_WORDS
    wanted = max(math.ceil(max(slot_words) / AUTO_ROUNDS), AUTO_MIN_WORDS,
                 math.ceil(vocab_size * config.vector_size / AUTO_VALUES_PER_WORD))
    return min(wanted, AUTO_MAX_WORDS)
