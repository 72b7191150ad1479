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
              pytest.mark.filterwarnings("ignore:overflow encountered in scalar multiply"),
              pytest.mark.filterwarnings("ignore:overflow encountered in scalar add")]


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


@pytest.mark.parametrize("vocab,negative,lr", [(12, 3, 0.5), (6, 12, 0.1)],
                         ids=["few-repeats", "many-repeats"])
@pytest.mark.parametrize("seed", [0, 1])
def test_batched_skipgram_equals_the_batched_reference(gpu, seed: int, vocab: int,
                                                       negative: int, lr: float) -> None:
    """The HogBatch kernel (a centre's window shares its bulk-drawn negatives, one minibatch):
    replaying one block's draws through the NumPy reference of the CPU's default skip-gram
    gives the same matrices, counters and loss; a negative drawn m times takes word2vec's m
    steps (12 draws from 6 words repeat most of them)."""
    problem = _problem(vocab=vocab, dim=6, sentences=4, seed=seed)
    before = {k: v.copy() for k, v in problem.items()}
    counters, trace = gpu.train(**problem, sg=True, window=2, negative=negative, lr_start=lr,
                                lr_end=lr / 10, seed=seed, blocks=1, threads=4,
                                trace_capacity=1000, shared_negatives=True)
    assert trace is not None and len(trace["lr"]) > 3
    W_in, W_out = before["W_in"].copy(), before["W_out"].copy()
    ref = reference.Counters()
    for words, targets, rate in zip(trace["words"], trace["targets"], trace["lr"]):
        reference.skipgram_batch_step(W_in, W_out, words[words >= 0], targets, float(rate), ref)
    if negative > 4:
        assert np.mean([len(np.unique(t[1:])) < negative for t in trace["targets"]]) > 0.9
    np.testing.assert_allclose(problem["W_in"], W_in, atol=1e-5)
    np.testing.assert_allclose(problem["W_out"], W_out, atol=1e-5)
    assert counters[cpu.EXAMPLES] == ref.examples
    assert counters[cpu.LOSS_TERMS] == ref.terms
    assert counters[cpu.LOSS_SUM] == pytest.approx(ref.loss, rel=1e-4)
    assert trace["lr"][0] == pytest.approx(lr) and np.all(np.diff(trace["lr"]) <= 0)


def test_bulk_negatives_follow_the_noise_distribution(gpu) -> None:
    """The bulk draws: the alias table's distribution (a chi-square bound far beyond chance),
    the same array for a seed, another for another seed."""
    from numba import cuda

    probabilities = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    alias_prob, alias_idx = cpu.build_alias(probabilities)
    draws = []
    for seed in (7, 7, 8):
        out = cuda.device_array((400, 5), np.int32)
        gpu.draw_kernel[2, 8](np.uint64(seed), cuda.to_device(alias_prob),
                              cuda.to_device(alias_idx), out)
        draws.append(out.copy_to_host())
    np.testing.assert_array_equal(draws[0], draws[1])
    assert (draws[0] != draws[2]).mean() > 0.5
    observed = np.bincount(draws[0].ravel(), minlength=6)
    expected = probabilities * draws[0].size
    assert ((observed - expected) ** 2 / expected).sum() < 30  # chi-square, 5 dof: p < 1e-5


@pytest.mark.parametrize("sg", [True, False], ids=["skipgram-hogbatch", "cbow"])
def test_a_long_call_runs_in_pieces_on_one_learning_rate_line(gpu, monkeypatch, sg: bool
                                                              ) -> None:
    """A call whose bulk negatives exceed ``DRAWS_PER_LAUNCH`` runs in pieces of whole
    sentences: the examples, their order and their learning rates are those of one piece
    (only the negatives differ), and the reference replay still holds."""
    traces = []
    for limit in (gpu.DRAWS_PER_LAUNCH, 6):
        monkeypatch.setattr(gpu, "DRAWS_PER_LAUNCH", limit)
        problem = _problem(sentences=5, seed=2)
        before = {k: v.copy() for k, v in problem.items()}
        _, trace = gpu.train(**problem, sg=sg, window=2, negative=2, lr_start=0.4,
                             lr_end=0.04, seed=3, blocks=1, threads=4, trace_capacity=1000,
                             shared_negatives=True)
        traces.append(trace)
    one, pieces = traces
    np.testing.assert_array_equal(one["words"], pieces["words"])
    np.testing.assert_allclose(one["lr"], pieces["lr"], rtol=1e-5)  # float32 rates
    assert (one["targets"][:, 1:] != pieces["targets"][:, 1:]).any()
    W_in, W_out = before["W_in"].copy(), before["W_out"].copy()
    ref = reference.Counters()
    for words, targets, rate in zip(pieces["words"], pieces["targets"], pieces["lr"]):
        if sg:
            reference.skipgram_batch_step(W_in, W_out, words[words >= 0], targets, float(rate),
                                          ref)
        else:
            reference.cbow_step(W_in, W_out, words[words >= 0], targets, float(rate), ref)
    np.testing.assert_allclose(problem["W_in"], W_in, atol=1e-5)
    np.testing.assert_allclose(problem["W_out"], W_out, atol=1e-5)


@pytest.mark.parametrize("sg,shared", [(True, False), (True, True), (False, False)],
                         ids=["skipgram", "skipgram-hogbatch", "cbow"])
def test_several_blocks_learn_planted_pairs_and_count_touches(gpu, sg: bool,
                                                              shared: bool) -> None:
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
                                touches=touches, shared_negatives=shared)
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
    with pytest.raises(ValueError, match=r"batched GPU kernel takes window <= 8 and window x "
                                         r"dim <= 2560 \(shared memory\)"):
        gpu.train(**problem, sg=True, window=9, negative=2, lr_start=0.1, lr_end=0.1, seed=0,
                  shared_negatives=True)
    assert gpu.fits_batch(300, 8) and gpu.fits_batch(512, 5) and gpu.fits_batch(1024, 2)
    assert not gpu.fits_batch(600, 5) and not gpu.fits_batch(100, 9)
    assert gpu.batch_shared_bytes(100, 5) == 8000


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
