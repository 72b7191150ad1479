"""Issue 16: the shared-negatives (HogBatch) skip-gram kernel at large ``negative``.

At ``negative=1000`` the frequent words are drawn dozens of times per centre; the kernel once
summed those draws' gradients, all taken at the first score, and diverged where the per-pair
kernel trains. A repeated negative now takes word2vec's steps one after the other.
"""

from __future__ import annotations

import numpy as np
import pytest

from dw2v.kernels import cpu
from dw2v.kernels.cpu_train import train


def _zipf_corpus(vocab: int = 1500, topics: int = 15, sentences: int = 300, length: int = 20,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zipfian tokens (the frequent words are drawn many times as negatives) with topics (each
    sentence favours one topic's words, so there is something to learn): ids, offsets, counts."""
    rng = np.random.default_rng(seed)
    zipf = 1.0 / np.arange(1, vocab + 1)
    topic_of = rng.integers(0, topics, vocab)
    rows = []
    for _ in range(sentences):
        p = zipf * np.where(topic_of == rng.integers(topics), 20.0, 1.0)
        rows.append(rng.choice(vocab, size=length, p=p / p.sum()))
    ids = np.concatenate(rows).astype(np.int32)
    offsets = np.arange(0, len(ids) + 1, length, dtype=np.int64)
    return ids, offsets, np.bincount(ids, minlength=vocab).astype(np.float64) + 1


def _train(negative: int, shared: bool, epochs: int = 2, dim: int = 32, alpha: float = 0.025
           ) -> tuple[list[float], np.ndarray, np.ndarray]:
    """Train ``epochs`` epochs (word2vec's defaults otherwise: window 5, sample 1e-3, linear
    decay); the loss per term of each epoch and the final matrices."""
    ids, offsets, counts = _zipf_corpus()
    vocab = len(counts)
    freq = counts / counts.sum()
    keep = np.minimum((np.sqrt(freq / 1e-3) + 1) * 1e-3 / freq, 1.0).astype(np.float32)
    noise = counts ** 0.75
    prob, idx = cpu.build_alias(noise / noise.sum())
    rng = np.random.default_rng(1)
    W_in = ((rng.random((vocab, dim)) - 0.5) / dim).astype(np.float32)
    W_out = np.zeros((vocab, dim), np.float32)
    losses = []
    for epoch in range(epochs):
        counters, _ = train(ids, offsets, W_in, W_out, keep, prob, idx, sg=True, window=5,
                            negative=negative, lr_start=alpha * (1 - epoch / epochs),
                            lr_end=max(alpha * (1 - (epoch + 1) / epochs), 1e-4), seed=epoch,
                            shared_negatives=shared)
        losses.append(counters[cpu.LOSS_SUM] / counters[cpu.LOSS_TERMS])
    return losses, W_in, W_out


@pytest.mark.parametrize("negative", [200, 1000])
def test_shared_negatives_stay_finite_and_learn_at_large_negative(negative: int) -> None:
    results = {shared: _train(negative, shared) for shared in (True, False)}
    for shared, (losses, W_in, W_out) in results.items():
        assert np.isfinite(W_in).all() and np.isfinite(W_out).all(), shared
        # the old kernel reached 1e16 and NaN here; per-pair: a few units
        assert np.abs(W_in).max() < 50 and np.abs(W_out).max() < 50, shared
        assert np.isfinite(losses).all()
        assert losses[1] < losses[0] < 0.2, (shared, losses)  # log(2) = 0.69 at the start
    shared_losses, pair_losses = results[True][0], results[False][0]
    assert shared_losses[-1] < 3 * pair_losses[-1], (shared_losses, pair_losses)


def test_with_one_context_per_centre_shared_negatives_are_the_per_pair_kernel() -> None:
    """Sentences of two words and window 1: every centre has one context word, both kernels
    draw the same numbers in the same order, and a one-pair minibatch is word2vec's step for
    that pair, so the kernels must agree, repeated negatives (40 draws from 8 words) included."""
    rng = np.random.default_rng(3)
    vocab, dim = 8, 10
    ids = rng.integers(0, vocab, 400).astype(np.int32)
    offsets = np.arange(0, len(ids) + 1, 2, dtype=np.int64)
    counts = np.arange(vocab, 0, -1, dtype=np.float64) ** 2
    prob, idx = cpu.build_alias(counts / counts.sum())
    keep = np.full(vocab, 0.9, np.float32)
    W_in = ((rng.random((vocab, dim)) - 0.5) / dim).astype(np.float32)
    W_out = ((rng.random((vocab, dim)) - 0.5) / dim).astype(np.float32)
    runs = []
    for shared in (True, False):
        matrices = (W_in.copy(), W_out.copy())
        touches = (np.zeros(vocab, np.int64), np.zeros(vocab, np.int64))
        counters, _ = train(ids, offsets, *matrices, keep, prob, idx, sg=True, window=1,
                            negative=40, lr_start=0.1, lr_end=0.01, seed=5,
                            shared_negatives=shared, touches=touches)
        runs.append((matrices, touches, counters))
    (shared_W, shared_touches, shared_counters), (pair_W, pair_touches, pair_counters) = runs
    assert shared_counters[cpu.EXAMPLES] == pair_counters[cpu.EXAMPLES] > 300
    assert shared_counters[cpu.LOSS_TERMS] == pair_counters[cpu.LOSS_TERMS]
    np.testing.assert_allclose(shared_counters[cpu.LOSS_SUM], pair_counters[cpu.LOSS_SUM],
                               rtol=1e-5)
    for shared_rows, pair_rows in zip(shared_W, pair_W):
        np.testing.assert_allclose(shared_rows, pair_rows, atol=1e-5)
    for a, b in zip(shared_touches, pair_touches):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(shared_W[0], W_in, atol=1e-2)  # it did train
