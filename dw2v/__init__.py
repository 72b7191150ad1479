"""dw2v: distributed word2vec on Dask, from Parquet or text corpora to embeddings."""

from __future__ import annotations

__version__ = "0.1.0"

from dw2v.config import (ClusterConfig, IngestConfig, RunConfig, TokenizerConfig,  # noqa: E402
                         TrainConfig, VocabConfig)
from dw2v.embeddings import Embeddings, load  # noqa: E402
from dw2v.errors import ConfigError, Dw2vError, InputError  # noqa: E402
from dw2v.prepare import VocabReport, build_vocab  # noqa: E402
from dw2v.train import train  # noqa: E402
from dw2v.vocab import Vocabulary  # noqa: E402

__all__ = [
    "ClusterConfig", "ConfigError", "Dw2vError", "Embeddings", "IngestConfig", "InputError",
    "RunConfig", "TokenizerConfig", "TrainConfig", "VocabConfig", "VocabReport", "Vocabulary",
    "__version__", "build_vocab", "load", "train",
]
