"""Numba kernels of the averaging step: one pass over the rows, float32, touched rows only.

``accumulate`` adds a worker's rows scaled by its touch counts into a running sum; ``block_update``
turns the sums into the touched-row weighted average and applies block momentum (BMUF with
Nesterov look-ahead; Chen & Huo, ICASSP 2016). NumPy spells of both are in ``reference``; the
tests compare them. Arrays in, arrays out: nothing here knows about Dask or files.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def accumulate(total: np.ndarray, weight: np.ndarray, rows: np.ndarray,
               touches: np.ndarray) -> None:
    """``total[r] += touches[r] * rows[r]`` and ``weight[r] += touches[r]`` where touched."""
    n, dim = rows.shape
    for r in range(n):
        k = touches[r]
        if k > 0:
            kf = np.float32(k)
            for j in range(dim):
                total[r, j] += kf * rows[r, j]
            weight[r] += k


@njit(cache=True, nogil=True)
def block_update(total: np.ndarray, weight: np.ndarray, previous: np.ndarray,
                 momentum: np.ndarray, eta: float, new_params: np.ndarray,
                 new_momentum: np.ndarray) -> int:
    """One block step per row; returns the number of rows that came out NaN or inf.

    ``D = total / weight - previous`` on touched rows (0 elsewhere), ``G' = eta G + D``,
    ``P' = previous + D + eta G'`` (the Nesterov look-ahead the workers start the next round
    from). With ``eta = 0`` this is the plain touched-row weighted average; ``momentum`` and
    ``new_momentum`` may then have no rows (neither is read or written).
    """
    n, dim = previous.shape
    bad = 0
    e = np.float32(eta)
    with_momentum = momentum.shape[0] > 0
    for r in range(n):
        w = weight[r]
        inv = np.float32(1.0 / w) if w > 0 else np.float32(0.0)
        finite = True
        for j in range(dim):
            d = total[r, j] * inv - previous[r, j] if w > 0 else np.float32(0.0)
            if with_momentum:
                g = e * momentum[r, j] + d
                new_momentum[r, j] = g
                p = previous[r, j] + d + e * g
            else:
                p = previous[r, j] + d
            new_params[r, j] = p
            if not np.isfinite(p):
                finite = False
        if not finite:
            bad += 1
    return bad


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
def add_rows(matrix: np.ndarray, ids: np.ndarray, delta: np.ndarray) -> None:
    """``matrix[ids[p]] += delta[p]`` for every p (ids distinct)."""
    dim = matrix.shape[1]
    for p in range(ids.shape[0]):
        r = ids[p]
        for j in range(dim):
            matrix[r, j] += delta[p, j]


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
