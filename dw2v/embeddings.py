"""Trained vectors apart from training state: words, counts, vectors, and lookups.

``dw2v.load(MODEL_DIR)`` returns an :class:`Embeddings`. Files are ``vectors.npy`` (float32,
one row per word, ids as in ``vocab.parquet``) and ``model.json``; never pickles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from dw2v.errors import InputError
from dw2v.vocab import load as load_vocab

VECTORS = "vectors.npy"
OUTPUT_VECTORS = "output_vectors.npy"
MODEL_JSON = "model.json"


@dataclass(frozen=True)
class Embeddings:
    """Words (id order: most frequent first), their counts and float32 vectors."""

    words: list[str]
    vectors: np.ndarray
    counts: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    @cached_property
    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    @cached_property
    def unit(self) -> np.ndarray:
        """Row-normalised vectors (zero rows stay zero)."""
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        return self.vectors / np.where(norms == 0, 1, norms)

    def vector(self, word: str) -> np.ndarray:
        if word not in self.index:
            raise KeyError(f"{word!r} is not in the vocabulary ({len(self)} words)")
        return self.vectors[self.index[word]]

    def most_similar(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` nearest words by cosine similarity (exact search), the word itself excluded."""
        i = self.index.get(word)
        if i is None:
            raise KeyError(f"{word!r} is not in the vocabulary ({len(self)} words)")
        sims = self.unit @ self.unit[i]
        sims[i] = -np.inf
        top = np.argpartition(-sims, min(k, len(sims) - 1))[:k]
        top = top[np.argsort(-sims[top])]
        return [(self.words[j], float(sims[j])) for j in top]


def load(path: str | Path) -> Embeddings:
    """Read a model directory written by ``dw2v train``."""
    path = Path(path)
    meta_path = path / MODEL_JSON
    if not meta_path.exists():
        hint = (" (training has not finished; continue it with --resume)"
                if (path / "checkpoints").exists() else "")
        raise InputError(str(path), f"not a dw2v model: no {MODEL_JSON}{hint}")
    meta = json.loads(meta_path.read_text())
    vocab = load_vocab(path)
    vectors = np.load(path / VECTORS)
    if vectors.shape[0] != len(vocab):
        raise InputError(str(path), f"{VECTORS} has {vectors.shape[0]} rows but the vocabulary "
                                    f"has {len(vocab)} words")
    return Embeddings(vocab.tokens.to_pylist(), vectors, vocab.counts, meta)
