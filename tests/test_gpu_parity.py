"""CPU/GPU quality parity on the development corpus (``gpu``: a real GPU only; the simulator
is far too slow for it): ``dw2v train --device gpu`` against ``--device cpu`` with the same
settings, WordSim-353 Spearman within 0.02 and at least 95 % of the CPU's analogy accuracy.

The corpus and evaluation files come from ``DW2V_DEVCORPUS`` and ``DW2V_EVAL`` (by default
``../shared/data/devcorpus`` and ``../shared/data/eval`` beside the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import dw2v

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("DW2V_DEVCORPUS", REPO.parent / "shared" / "data" / "devcorpus"))
EVAL = Path(os.environ.get("DW2V_EVAL", REPO.parent / "shared" / "data" / "eval"))

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(900)]


@pytest.fixture(scope="module", autouse=True)
def real_gpu() -> None:
    from dw2v.devices import gpu_problem, simulated

    if simulated() or gpu_problem() is not None:
        pytest.skip("needs a real CUDA GPU with CuPy (the simulator is far too slow)")
    if not CORPUS.is_dir() or not (EVAL / "wordsim353.tsv").exists():
        pytest.skip(f"no development corpus at {CORPUS} (DW2V_DEVCORPUS) or evaluation files "
                    f"at {EVAL} (DW2V_EVAL)")


def _trained(device: str, out: Path) -> dw2v.Embeddings:
    """One worker either way (a GPU; the CPU's kernels on 4 threads), so that the figures
    compare the devices and not the number of workers averaged."""
    config = dw2v.RunConfig(train=dw2v.TrainConfig(device=device, seed=1, threads=4),
                            cluster=dw2v.ClusterConfig(n_workers=1, dashboard_address=None))
    return dw2v.train([str(CORPUS)], out, config, progress=False)


def test_gpu_training_matches_cpu_quality(tmp_path: Path) -> None:
    cpu = _trained("cpu", tmp_path / "cpu")
    gpu = _trained("gpu", tmp_path / "gpu")
    assert set(gpu.meta["devices"].values()) == {"gpu"}
    ws_cpu = cpu.evaluate_similarity(EVAL / "wordsim353.tsv").spearman
    ws_gpu = gpu.evaluate_similarity(EVAL / "wordsim353.tsv").spearman
    an_cpu = cpu.evaluate_analogies(EVAL / "questions-words.txt").accuracy
    an_gpu = gpu.evaluate_analogies(EVAL / "questions-words.txt").accuracy
    print(f"WordSim-353 cpu {ws_cpu:.4f} gpu {ws_gpu:.4f}; analogy cpu {an_cpu:.4f} "
          f"gpu {an_gpu:.4f}")
    assert ws_gpu >= ws_cpu - 0.02
    assert an_gpu >= 0.95 * an_cpu
