"""Numba kernels of the sparse exchange: one pass over the touched rows, float32.

``count_offered`` and ``fill_offered`` take a round's change of the touched rows, grouped by
owner, in one pass; ``accumulate_rows`` and ``finish_average`` are the touched-row weighted
average of the parts an owner receives (the rule ``reference.touched_average`` spells in
NumPy; the tests compare them); ``settle_rows`` and ``add_rows`` apply the result. Arrays in,
arrays out: nothing here knows about Dask or files.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def accumulate_rows(ids: np.ndarray, delta: np.ndarray, touches: np.ndarray,
                    position: np.ndarray, out_ids: np.ndarray, out_delta: np.ndarray,
                    out_weight: np.ndarray, m: int) -> int:
    """Add one worker's touched rows, weighted by touches, into running sums: ``out_delta[p]
    += t_i delta_i`` and ``out_weight[p] += t_i`` for the slot ``p`` of row ``ids[i]``.

    ``position`` (one int32 per row of the matrix) maps a row to its slot, -1 for none yet;
    rows take slots in the order first seen, from ``m`` (the slots used so far) on. Returns the
    slots used; :func:`finish_average` divides and puts ``position`` back to all -1."""
    n, dim = delta.shape
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
    return m


@njit(cache=True, nogil=True)
def finish_average(position: np.ndarray, out_ids: np.ndarray, out_delta: np.ndarray,
                   out_weight: np.ndarray, m: int) -> int:
    """Divide the first ``m`` sums by their weights (the touched-row weighted average), reset
    their ``position`` entries to -1; returns how many came out NaN or inf."""
    dim = out_delta.shape[1]
    bad = 0
    for p in range(m):
        position[out_ids[p]] = -1
        inv = np.float32(1.0 / out_weight[p])
        finite = True
        for j in range(dim):
            v = out_delta[p, j] * inv
            out_delta[p, j] = v
            if not np.isfinite(v):
                finite = False
        if not finite:
            bad += 1
    return bad


@njit(cache=True, nogil=True)
def count_offered(touches: np.ndarray, select: np.ndarray, owners: int,
                  bounds: np.ndarray) -> None:
    """Where each owner's rows go in an offer: ``bounds[k]:bounds[k+1]`` holds the touched
    rows (``touches > 0``, and ``select`` when it is not empty) with ``id % owners == k``."""
    bounds[:] = 0
    masked = select.shape[0] > 0
    for r in range(touches.shape[0]):
        if touches[r] > 0 and (not masked or select[r]):
            bounds[r % owners + 1] += 1
    for k in range(owners):
        bounds[k + 1] += bounds[k]


@njit(cache=True, nogil=True)
def fill_offered(replica: np.ndarray, base: np.ndarray, touches: np.ndarray,
                 select: np.ndarray, owners: int, bounds: np.ndarray, out_ids: np.ndarray,
                 out_delta: np.ndarray, out_touches: np.ndarray) -> int:
    """The offer itself, grouped by owner as :func:`count_offered` laid out: each row's id,
    its change ``replica - base`` and its touches, in one pass; returns the rows whose new
    value is NaN or inf (a diverging round, found before anything is sent)."""
    dim = replica.shape[1]
    masked = select.shape[0] > 0
    fill = bounds[:owners].copy()
    bad = 0
    for r in range(touches.shape[0]):
        if touches[r] > 0 and (not masked or select[r]):
            p = fill[r % owners]
            fill[r % owners] += 1
            out_ids[p] = r
            out_touches[p] = touches[r]
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
def nonfinite_rows(matrix: np.ndarray, touches: np.ndarray) -> int:
    """The rows with ``touches > 0`` holding a NaN or inf (a diverging round; one worker has
    nothing to exchange, so it looks here instead)."""
    bad = 0
    dim = matrix.shape[1]
    for r in range(touches.shape[0]):
        if touches[r] > 0:
            for j in range(dim):
                if not np.isfinite(matrix[r, j]):
                    bad += 1
                    break
    return bad


@njit(cache=True, nogil=True)
def add_rows(matrix: np.ndarray, ids: np.ndarray, delta: np.ndarray, scale: np.float32) -> None:
    """``matrix[ids[p]] += scale * delta[p]`` for every p (ids distinct)."""
    dim = matrix.shape[1]
    for p in range(ids.shape[0]):
        r = ids[p]
        for j in range(dim):
            matrix[r, j] += scale * delta[p, j]


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
