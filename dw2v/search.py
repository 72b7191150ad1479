"""Approximate nearest-neighbour indexes over the unit vectors (inner product = cosine).

Three well-kept HNSW libraries behind one small interface: hnswlib, FAISS (``IndexHNSWFlat``)
and usearch. The default, FAISS, was chosen by measurement (benchmarks/bench_search.py,
RESULTS.md §4): its queries were within 15 % of hnswlib's, the fastest, at the same recall, it
built fastest on random vectors, and it installs from wheels (hnswlib needs a C++ compiler);
the others are optional extras. An index directory holds the library's file, ``tokens.txt``
(one word per line, in row order) and ``index.json`` (backend, sizes, settings, and a checksum
of the vectors, so an index built from other vectors is refused instead of answering wrongly).
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dw2v.embeddings import Embeddings
from dw2v.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

BACKENDS = ("hnswlib", "faiss", "usearch")
DEFAULT_BACKEND = "faiss"
INDEX_JSON = "index.json"
TOKENS = "tokens.txt"


@dataclass(frozen=True)
class IndexConfig:
    """HNSW settings shared by the backends: graph degree, build and search beam widths."""

    M: int = 16
    ef_construction: int = 200
    ef_search: int = 128
    threads: int = 0  # 0: all cores


def checksum(vectors: np.ndarray) -> str:
    """A CRC of the vectors' shape and bytes (ties an index to the vectors it was built on)."""
    data = np.ascontiguousarray(vectors, np.float32)
    return f"{data.shape[0]}x{data.shape[1]}:{zlib.crc32(data.tobytes()):08x}"


def _threads(config: IndexConfig) -> int:
    return config.threads or os.cpu_count() or 1


def _import(backend: str) -> Any:
    names = {"hnswlib": "hnswlib", "faiss": "faiss", "usearch": "usearch.index"}
    try:
        return __import__(names[backend], fromlist=["_"])
    except ImportError:
        extra = {"hnswlib": "hnswlib", "faiss": "faiss-cpu", "usearch": "usearch"}[backend]
        raise ConfigError(f"--backend {backend}: the library is not installed "
                          f"(pip install {extra})") from None


class _Hnswlib:
    file = "index.hnswlib"

    def __init__(self, impl: Any) -> None:
        self.impl = impl

    @classmethod
    def build(cls, unit: np.ndarray, config: IndexConfig) -> _Hnswlib:
        hnswlib = _import("hnswlib")
        impl = hnswlib.Index(space="ip", dim=unit.shape[1])
        impl.init_index(max_elements=len(unit), ef_construction=config.ef_construction,
                        M=config.M, random_seed=1)
        impl.add_items(unit, np.arange(len(unit)), num_threads=_threads(config))
        impl.set_ef(config.ef_search)
        return cls(impl)

    def query(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        labels, distances = self.impl.knn_query(queries, k=k)
        return labels.astype(np.int64), (1.0 - distances).astype(np.float32)

    def save(self, path: Path) -> None:
        self.impl.save_index(str(path))

    @classmethod
    def load(cls, path: Path, dim: int, count: int, config: IndexConfig) -> _Hnswlib:
        impl = _import("hnswlib").Index(space="ip", dim=dim)
        impl.load_index(str(path), max_elements=count)
        impl.set_ef(config.ef_search)
        return cls(impl)


class _Faiss:
    file = "index.faiss"

    def __init__(self, impl: Any) -> None:
        self.impl = impl

    @classmethod
    def build(cls, unit: np.ndarray, config: IndexConfig) -> _Faiss:
        faiss = _import("faiss")
        faiss.omp_set_num_threads(_threads(config))
        impl = faiss.IndexHNSWFlat(unit.shape[1], config.M, faiss.METRIC_INNER_PRODUCT)
        impl.hnsw.efConstruction = config.ef_construction
        impl.add(unit)
        impl.hnsw.efSearch = config.ef_search
        return cls(impl)

    def query(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims, labels = self.impl.search(queries, k)
        return labels.astype(np.int64), sims.astype(np.float32)

    def save(self, path: Path) -> None:
        _import("faiss").write_index(self.impl, str(path))

    @classmethod
    def load(cls, path: Path, dim: int, count: int, config: IndexConfig) -> _Faiss:
        impl = _import("faiss").read_index(str(path))
        impl.hnsw.efSearch = config.ef_search
        return cls(impl)


class _Usearch:
    file = "index.usearch"

    def __init__(self, impl: Any) -> None:
        self.impl = impl

    @staticmethod
    def _new(dim: int, config: IndexConfig) -> Any:
        return _import("usearch").Index(ndim=dim, metric="ip", dtype="f32",
                                        connectivity=config.M,
                                        expansion_add=config.ef_construction,
                                        expansion_search=config.ef_search)

    @classmethod
    def build(cls, unit: np.ndarray, config: IndexConfig) -> _Usearch:
        impl = cls._new(unit.shape[1], config)
        impl.add(np.arange(len(unit)), unit, threads=_threads(config))
        return cls(impl)

    def query(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        matches = self.impl.search(queries, k)
        keys = np.asarray(matches.keys, np.int64).reshape(len(queries), -1)
        distances = np.asarray(matches.distances, np.float32).reshape(len(queries), -1)
        counts = (np.asarray(matches.counts).reshape(-1) if hasattr(matches, "counts")
                  else np.array([np.asarray(matches.keys).size]))  # one query: ``Matches``
        mask = np.arange(keys.shape[1])[None, :] >= counts[:, None]
        keys[mask] = -1
        return keys, np.where(mask, -np.inf, 1.0 - distances).astype(np.float32)

    def save(self, path: Path) -> None:
        self.impl.save(str(path))

    @classmethod
    def load(cls, path: Path, dim: int, count: int, config: IndexConfig) -> _Usearch:
        impl = cls._new(dim, config)
        impl.load(str(path))
        return cls(impl)


_IMPLS: dict[str, Any] = {"hnswlib": _Hnswlib, "faiss": _Faiss, "usearch": _Usearch}


class AnnIndex:
    """An HNSW index over a model's unit vectors; ``query`` gives rows and cosine similarities."""

    def __init__(self, backend: str, impl: Any, words: list[str], dim: int,
                 vectors_checksum: str, config: IndexConfig, seconds_build: float = 0.0) -> None:
        self.backend = backend
        self.dim = dim
        self.impl = impl
        self.words = words
        self.vectors_checksum = vectors_checksum
        self.config = config
        self.seconds_build = seconds_build

    @classmethod
    def build(cls, emb: Embeddings, backend: str = DEFAULT_BACKEND,
              config: IndexConfig = IndexConfig()) -> AnnIndex:
        if backend not in _IMPLS:
            raise ConfigError(f"--backend: {backend!r} is not one of {', '.join(BACKENDS)}")
        started = time.perf_counter()
        unit = np.ascontiguousarray(emb.unit, np.float32)
        impl = _IMPLS[backend].build(unit, config)
        seconds = time.perf_counter() - started
        logger.info("%s index of %d vectors built in %.1f s", backend, len(unit), seconds)
        return cls(backend, impl, list(emb.words), unit.shape[1], checksum(emb.vectors),
                   config, seconds)

    def query(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows to each (unit) query and their cosine similarities; rows are
        -1 where the index found fewer than ``k``."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        return self.impl.query(queries, min(k, len(self.words)))

    def save(self, path: str | Path, overwrite: bool = False) -> None:
        """Write the index directory: staged beside it and swapped in when complete; an
        existing one is replaced only with ``overwrite`` and only if it holds dw2v output."""
        from dw2v.atomic import staged_dir

        with staged_dir(path, overwrite=overwrite) as tmp:
            self.impl.save(tmp / self.impl.file)
            (tmp / TOKENS).write_text("".join(w + "\n" for w in self.words), encoding="utf-8")
            (tmp / INDEX_JSON).write_text(json.dumps({
                "backend": self.backend, "count": len(self.words),
                "dim": self.dim,
                "vectors": self.vectors_checksum, "config": asdict(self.config),
                "seconds_build": self.seconds_build}, indent=1))

    @classmethod
    def load(cls, path: str | Path, emb: Embeddings | None = None) -> AnnIndex:
        """Read an index directory; with ``emb``, refuse an index built from other vectors."""
        path = Path(path)
        try:
            info = json.loads((path / INDEX_JSON).read_text())
            words = (path / TOKENS).read_text(encoding="utf-8").splitlines()
        except (OSError, ValueError) as exc:
            raise InputError(str(path), f"not a dw2v index ({exc})") from None
        keys = ("backend", "count", "dim", "vectors", "config")
        if not isinstance(info, dict) or any(k not in info for k in keys):
            raise InputError(str(path / INDEX_JSON), "not a dw2v index description (it needs "
                                                     f"{', '.join(keys)})")
        if info["backend"] not in _IMPLS:
            raise InputError(str(path / INDEX_JSON), f"unknown backend {info['backend']!r}")
        if len(words) != info["count"]:
            raise InputError(str(path / TOKENS), f"{len(words)} words but {INDEX_JSON} says "
                                                 f"{info['count']}")
        if emb is not None and info["vectors"] != checksum(emb.vectors):
            raise InputError(str(path), "was built from other vectors than this model's; "
                                        "rebuild it with dw2v index --overwrite")
        try:
            config = IndexConfig(**info["config"])
        except TypeError as exc:
            raise InputError(str(path / INDEX_JSON), f"invalid config ({exc})") from None
        impl_cls = _IMPLS[info["backend"]]
        index_file = path / impl_cls.file
        if not index_file.is_file():
            raise InputError(str(index_file), "missing; rebuild the index with dw2v index "
                                              "--overwrite")
        try:
            impl = impl_cls.load(index_file, info["dim"], info["count"], config)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - each library raises its own kinds
            raise InputError(str(index_file), f"cannot be read ({exc}); rebuild the index with "
                                              "dw2v index --overwrite") from None
        return cls(info["backend"], impl, words, info["dim"], info["vectors"], config,
                   info.get("seconds_build", 0.0))
