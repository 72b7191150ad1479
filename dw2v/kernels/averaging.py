"""Numba kernels of the sparse exchange: one pass over the touched rows, float32.

``row_changes`` takes a round's change of the touched rows, ``group_by_owner`` splits them by
owner, ``sparse_average`` is the touched-row weighted average (the rule ``reference
.touched_average`` spells in NumPy; the tests compare them), ``settle_rows`` applies the
result. Arrays in, arrays out: nothing here knows about Dask or files.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def sparse_average(ids: np.ndarray, delta: np.ndarray, touches: np.ndarray, position: np.ndarray,
                   out_ids: np.ndarray, out_delta: np.ndarray, out_weight: np.ndarray) -> int:
    """The touched-row weighted average of concatenated sparse updates, in one pass:
    ``out_delta[p] = sum t_i delta_i / sum t_i`` over the entries ``i`` of row ``out_ids[p]``.

    ``position`` (one int32 per row of the matrix, all -1 on entry and again on return) maps a
    row to its output slot; rows appear in ``out_ids`` in the order first seen. Returns the
    number of distinct rows ``m`` (the outputs' first ``m`` entries); ``out_delta`` rows that
    are NaN or inf are left so and counted by the caller."""
    n, dim = delta.shape
    m = 0
    for i in range(n):
        r = ids[i]
        p = position[r]
        if p < 0:
            p = m
            position[r] = p
            out_ids[p] = r
            out_weight[p] = 0.0
            for j in range(dim):
                out_delta[p, j] = 0.0
            m += 1
        t = touches[i]
        out_weight[p] += t
        for j in range(dim):
            out_delta[p, j] += t * delta[i, j]
    for p in range(m):
        position[out_ids[p]] = -1
        inv = np.float32(1.0 / out_weight[p])
        for j in range(dim):
            out_delta[p, j] *= inv
    return m


@njit(cache=True, nogil=True)
def row_changes(replica: np.ndarray, base: np.ndarray, ids: np.ndarray,
                out_delta: np.ndarray) -> int:
    """``out_delta[p] = replica[ids[p]] - base[ids[p]]``; returns the rows whose new value is
    NaN or inf (a diverging round, found before anything is sent)."""
    dim = replica.shape[1]
    bad = 0
    for p in range(ids.shape[0]):
        r = ids[p]
        finite = True
        for j in range(dim):
            v = replica[r, j]
            if not np.isfinite(v):
                finite = False
            out_delta[p, j] = v - base[r, j]
        if not finite:
            bad += 1
    return bad


@njit(cache=True, nogil=True)
def settle_rows(replica: np.ndarray, base: np.ndarray, ids: np.ndarray,
                delta: np.ndarray) -> None:
    """``replica[r] = base[r] = base[r] + delta[p]`` for ``r = ids[p]`` (ids distinct): the
    averaged change replaces this worker's own, and both copies agree again."""
    dim = replica.shape[1]
    for p in range(ids.shape[0]):
        r = ids[p]
        for j in range(dim):
            v = base[r, j] + delta[p, j]
            base[r, j] = v
            replica[r, j] = v


@njit(cache=True, nogil=True)
def group_by_owner(ids: np.ndarray, delta: np.ndarray, touches: np.ndarray, owners: int,
                   out_ids: np.ndarray, out_delta: np.ndarray, out_touches: np.ndarray,
                   bounds: np.ndarray) -> None:
    """Copy rows grouped by owner (``id % owners``), in their order within each group: owner
    ``k``'s rows end up in ``[bounds[k], bounds[k + 1])`` (a counting sort, one pass to count
    and one to copy)."""
    n, dim = delta.shape
    bounds[:] = 0
    for i in range(n):
        bounds[ids[i] % owners + 1] += 1
    for k in range(owners):
        bounds[k + 1] += bounds[k]
    fill = bounds[:owners].copy()
    for i in range(n):
        p = fill[ids[i] % owners]
        fill[ids[i] % owners] += 1
        out_ids[p] = ids[i]
        out_touches[p] = touches[i]
        for j in range(dim):
            out_delta[p, j] = delta[i, j]
