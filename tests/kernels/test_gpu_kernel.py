"""The CUDA skip-gram kernel (``dw2v.kernels.gpu``) against the NumPy reference: in Numba's
CUDA simulator where there is no GPU (``cudasim``, CI), on the device where there is one."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dw2v.kernels import cpu, reference

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
# the simulator runs the kernel's uint64 generator as NumPy scalars, which warn on the
# wraparound a GPU does silently
pytestmark = [pytest.mark.cudasim if SIMULATED else pytest.mark.gpu,
              pytest.mark.filterwarnings("ignore:overflow encountered in scalar multiply")]


@pytest.fixture(scope="module")
def gpu():
    from numba import cuda

    if not SIMULATED and not cuda.is_available():
        pytest.skip("no CUDA GPU, and the CUDA simulator is off (NUMBA_ENABLE_CUDASIM)")
    from dw2v.kernels import gpu

    return gpu


def _problem(vocab: int = 12, dim: int = 6, sentences: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 7, size=sentences)
    ids = rng.integers(0, vocab, size=lengths.sum()).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    counts = np.sort(rng.integers(1, 100, size=vocab))[::-1].astype(np.float64)
    keep = rng.uniform(0.4, 1.0, size=vocab).astype(np.float32)
    alias_prob, alias_idx = cpu.build_alias(counts ** 0.75 / (counts ** 0.75).sum())
    W_in = ((rng.random((vocab, dim)) - 0.5) / dim).astype(np.float32)
    W_out = ((rng.random((vocab, dim)) - 0.5) / dim).astype(np.float32)
    return dict(ids=ids, offsets=offsets, W_in=W_in, W_out=W_out, keep_prob=keep,
                alias_prob=alias_prob, alias_idx=alias_idx)


@pytest.mark.parametrize("sg", [True, False], ids=["skipgram", "cbow"])
@pytest.mark.parametrize("seed", [0, 1])
def test_one_block_equals_the_reference_on_the_same_draws(gpu, sg: bool,
                                                          seed: int) -> None:
    """One block trains the sentences in order; replaying its draws (each example's input
    words, targets and learning rate) through the NumPy reference gives the same matrices."""
    problem = _problem(seed=seed)
    before = {k: v.copy() for k, v in problem.items()}
    counters, trace = gpu.train(**problem, sg=sg, window=2, negative=3, lr_start=0.5,
                                lr_end=0.05, seed=seed, blocks=1, threads=4,
                                trace_capacity=1000)
    assert trace is not None and len(trace["lr"]) == counters[cpu.EXAMPLES] > 5
    W_in, W_out = before["W_in"].copy(), before["W_out"].copy()
    ref = reference.Counters()
    for words, targets, lr in zip(trace["words"], trace["targets"], trace["lr"]):
        if sg:
            reference.skipgram_step(W_in, W_out, int(words[0]), targets, float(lr), ref)
        else:
            reference.cbow_step(W_in, W_out, words[words >= 0], targets, float(lr), ref)
    np.testing.assert_allclose(problem["W_in"], W_in, atol=1e-5)
    np.testing.assert_allclose(problem["W_out"], W_out, atol=1e-5)
    assert counters[cpu.LOSS_TERMS] == ref.terms
    assert counters[cpu.LOSS_SUM] == pytest.approx(ref.loss, rel=1e-4)
    assert counters[cpu.WORDS_READ] == problem["offsets"][-1]
    assert 0 < counters[cpu.WORDS_KEPT] <= counters[cpu.WORDS_READ]
    # the learning rate falls linearly, sentence by sentence, over the words read
    assert trace["lr"][0] == pytest.approx(0.5) and np.all(np.diff(trace["lr"]) <= 0)


@pytest.mark.parametrize("sg", [True, False], ids=["skipgram", "cbow"])
def test_several_blocks_learn_planted_pairs_and_count_touches(gpu, sg: bool) -> None:
    """Words that always occur together (0-1, 2-3, ...) end up closer to their partner than to
    the rest after a few passes with several blocks at once (Hogwild); every update is
    counted in the touch arrays."""
    rng = np.random.default_rng(4)
    vocab, dim = 8, 8
    pairs = rng.integers(0, vocab // 2, size=40) * 2
    ids = np.stack([pairs, pairs + 1], axis=1).ravel().astype(np.int32)
    offsets = np.arange(0, len(ids) + 1, 2, dtype=np.int64)
    alias_prob, alias_idx = cpu.build_alias(np.full(vocab, 1.0 / vocab))
    W_in = ((rng.random((vocab, dim)) - 0.5) / dim).astype(np.float32)
    W_out = np.zeros((vocab, dim), np.float32)
    touches = (np.zeros(vocab, np.int64), np.zeros(vocab, np.int64))
    losses = []
    for epoch in range(4):
        counters, _ = gpu.train(ids, offsets, W_in, W_out, np.ones(vocab, np.float32),
                                alias_prob, alias_idx, sg=sg, window=1, negative=2,
                                lr_start=0.1, lr_end=0.1, seed=epoch, blocks=2, threads=2,
                                touches=touches)
        losses.append(counters[cpu.LOSS_SUM] / counters[cpu.LOSS_TERMS])
    assert losses[-1] < losses[0]
    unit = W_in / np.linalg.norm(W_in, axis=1, keepdims=True)
    out = W_out / np.linalg.norm(W_out, axis=1, keepdims=True)
    scores = unit @ out.T  # a word's input vector against every output vector
    partner = np.arange(vocab) ^ 1
    assert (scores[np.arange(vocab), partner] > np.median(scores, axis=1)).mean() >= 0.75
    assert touches[0].sum() == 4 * 80  # every example (a pair): one context row once
    assert touches[1].sum() >= touches[0].sum()  # the centre and the negatives not skipped


def test_sizes_beyond_the_kernel_are_refused(gpu) -> None:
    problem = _problem()
    with pytest.raises(ValueError, match="dim <= 1024, negative <= 64"):
        gpu.train(**problem, sg=True, window=2, negative=70, lr_start=0.1, lr_end=0.1, seed=0)


@pytest.mark.parametrize("sg", [True, False], ids=["skipgram", "cbow"])
def test_the_warp_shuffle_variant_equals_the_shared_memory_one(gpu, sg: bool) -> None:
    """The dot products by warp shuffles (the default on a GPU) against the shared-memory
    ones (the simulator's): one block of 32 threads, the same draws, the same matrices up to
    the order of float additions. On a GPU only: the simulator has no warp shuffles."""
    if SIMULATED:
        pytest.skip("the CUDA simulator has no warp shuffles")
    results = []
    for warp in (False, True):
        problem = _problem(vocab=30, dim=72, sentences=6, seed=3)
        counters, _ = gpu.train(**problem, sg=sg, window=3, negative=4, lr_start=0.3,
                                lr_end=0.05, seed=9, blocks=1, threads=32, warp=warp)
        results.append((counters, problem["W_in"], problem["W_out"]))
    (c0, in0, out0), (c1, in1, out1) = results
    np.testing.assert_array_equal(c0[:3], c1[:3])  # words read, kept, examples
    np.testing.assert_allclose(in0, in1, atol=1e-5)
    np.testing.assert_allclose(out0, out1, atol=1e-5)


def test_warp_shuffles_are_refused_where_they_cannot_run(gpu) -> None:
    with pytest.raises(ValueError, match="warp shuffles need a GPU and blocks of 32 threads"):
        gpu.train(**_problem(), sg=True, window=2, negative=2, lr_start=0.1, lr_end=0.1,
                  seed=0, threads=4, warp=True)
