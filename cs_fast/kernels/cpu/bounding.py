"""The pruned search's exact row selections and triangle-inequality bounds (:mod:`cs_fast.kernels.cpu.prune`).

Rows are in one of three states: :data:`OPEN`, :data:`DONE` (computed: its
median is known or known not to win) and :data:`SKIPPED` (pruned by its lower
bound). :func:`select` is the exact lower median of a row, :func:`median_floor`
a cheap lower bound of it, :func:`finish_rows` the medians (or floors) of a
tile of full rows, and :func:`tighten` the bound every open row takes from
them (its derivation in the docstring).
"""

import math

import numpy as np
from numba import prange

from . import distances
from .runtime import kernel

# These kernels inline distances.py's (kth_smallest): its source joins their cache key.
_KERNEL = {"depends": (distances,)}

OPEN = 0
DONE = 1  # computed (full row or counting pass): its median is known or known not to win
SKIPPED = 2  # pruned by its lower bound

# Strided sample of median_floor: its proposal lies about sqrt(s) / (2 s) in rank below the
# median (4096: 0.8 %); a larger sample costs more to select in (measured: 2048 and 8192 were slower).
FLOOR_SAMPLE = 4096



@kernel(nogil=True, **_KERNEL)
def select(row, k, scratch):
    """k-th smallest (1-based) of ``row`` without reordering it.

    Quickselect on a whole distance row mispredicts most of its branches. A
    strided sample brackets the k-th value instead; one branch-free pass
    counts what lies below the bracket and compacts what lies inside it into
    ``scratch`` (every value is stored, the write position only advances for
    values inside), and quickselect finishes on that small copy. A bracket that
    misses or overflows ``scratch`` falls back to a full copy (still exact,
    only slower). The result is an element of ``row``: the same value
    quickselect on the whole row returns.
    """
    n = row.shape[0]
    cap = scratch.shape[0]
    if n <= 4096 or cap < 1024:
        tmp = scratch[:n] if cap >= n else np.empty(n)
        tmp[:] = row
        return distances.kth_smallest(tmp, k)
    s = 512
    sample = np.empty(s)
    for t in range(s):
        sample[t] = row[(t * n) // s]
    pos = (k - 1) * s / n
    spread = 3.0 * math.sqrt(s * 0.25) + 1.0
    a = max(0, int(pos - spread))
    b = min(s - 1, int(pos + spread) + 1)
    lo = distances.kth_smallest(sample, a + 1)
    hi = distances.kth_smallest(sample, b + 1)  # after the first call sample[: a + 1] <= lo still holds
    below = 0
    m = 0
    last = cap - 1
    for t in range(n):
        v = row[t]
        below += v < lo
        scratch[min(m, last)] = v
        m += (v >= lo) & (v <= hi)
    if below < k <= below + m and m < cap:
        return distances.kth_smallest(scratch[:m], k - below)
    tmp = scratch[:n] if cap >= n else np.empty(n)
    tmp[:] = row
    return distances.kth_smallest(tmp, k)


@kernel(nogil=True, **_KERNEL)
def median_floor(row, k, scratch):
    """A value ``<=`` the k-th smallest of ``row``: the bound a full row lends the others.

    The bounds only need the median from below, and an exact selection costs
    several times the row's distances. A strided sample proposes ``lo`` one
    standard deviation of the sample rank below the k-th; one branch-free pass
    counts the values below it, and fewer than ``k`` of them proves the k-th
    smallest is ``>= lo``. Otherwise (the sample missed) the exact selection.
    """
    n = row.shape[0]
    s = min(FLOOR_SAMPLE, n // 8)
    if s < 512:
        return select(row, k, scratch)
    sample = np.empty(s)
    for t in range(s):
        sample[t] = row[(t * n) // s]
    a = int((k - 1) * s / n - math.sqrt(s * 0.25))
    if a < 0:
        return select(row, k, scratch)
    lo = distances.kth_smallest(sample, a + 1)
    if distances.count_below(row, lo) < k:
        return lo
    return select(row, k, scratch)


@kernel(parallel=True, **_KERNEL)
def finish_rows(D, rows, k, best, best_index, want_bound, scratch, med, bound):
    """Lower median of each computed row of ``D`` (rows ``rows`` of the input) that may win.

    A row that cannot win (fewer than ``k`` distances below its threshold: the
    best median, or for rows before the best index the next float above it,
    so that an equal median with a smaller index still counts) gets
    ``med = inf`` and, if ``want_bound`` (the bounds need it), ``bound`` a
    value no larger than its median (:func:`median_floor`); a row that may
    win gets its exact median in both.
    """
    for r in prange(rows.shape[0]):
        i = rows[r]
        t = best if i > best_index else np.nextafter(best, np.inf)
        row = D[r]
        if distances.count_below(row, t) >= k:
            med[r] = select(row, k, scratch[r])
            bound[r] = med[r]
        else:
            med[r] = np.inf
            bound[r] = median_floor(row, k, scratch[r]) if want_bound else np.inf


@kernel(parallel=True, **_KERNEL)
def tighten(D, med, root, eps, tiny, cols, lbc, state, best, best_index, chunk, compact=False):
    """Raise the bounds ``lbc`` of rows ``cols`` with the rows of ``D``; mark rows that can no longer win.

    ``cols`` lists the rows still open when the caller last compacted them
    (``lbc[t]`` is row ``cols[t]``'s bound), so the pass shrinks with the open set.
    With ``compact`` (boxes, never ``root``) ``D[r, t]`` is the distance to ``cols[t]``.

    For computed distances with ``|d_hat - d| <= eps d + tiny`` and ``M`` the
    computed median of row j, or any value below it (``med`` holds such lower
    bounds, :func:`median_floor`): at least ``n - k + 1`` of row j's distances
    are ``>= M``, and every k with ``d_hat(j, k) >= M`` has
    ``d(j, k) >= (M - tiny) / (1 + eps)``, ``d(i, j) <= (d_hat(i, j) + tiny) / (1 - eps)``,
    hence ``d_hat(i, k) >= (1 - eps) (d(j, k) - d(i, j)) - tiny
    >= M (1 - 2 eps) - d_hat(i, j) - 3 tiny``: at least ``n - k + 1`` of row i's
    computed distances are that large, so its computed median is too. The
    code subtracts one more ``eps`` on each side to cover its own rounding.
    With ``root`` the rows hold squared distances: the bound is on the roots.
    Returns the number of rows newly marked SKIPPED.
    """
    n = cols.shape[0]
    m = med.shape[0]
    base = np.empty(m)
    for r in range(m):
        v = med[r]
        if root:
            v = math.sqrt(v)
        base[r] = v * (1.0 - 3.0 * eps) - 3.0 * tiny
    grow = 1.0 + eps
    nchunks = (n + chunk - 1) // chunk
    newly = np.zeros(nchunks, np.int64)
    for c in prange(nchunks):
        j0 = c * chunk
        j1 = min(n, j0 + chunk)
        for r in range(m):
            b = base[r]
            if not b > 0.0:  # also skips an inf median (never computed)
                continue
            if b == np.inf:
                continue
            row = D[r]
            if compact:  # D[r, t] is already the distance to cols[t] (box32_bound_open)
                for t in range(j0, j1):
                    lbc[t] = max(lbc[t], b - row[t] * grow)
            elif root:
                for t in range(j0, j1):
                    lbc[t] = max(lbc[t], b - math.sqrt(row[cols[t]]) * grow)
            else:
                for t in range(j0, j1):
                    lbc[t] = max(lbc[t], b - row[cols[t]] * grow)
        cnt = 0
        for t in range(j0, j1):
            j = cols[t]
            if state[j] == OPEN:
                # Distances are >= 0, so medians are: 0 is a bound too (it settles
                # identical samples once the best median is 0).
                v = max(lbc[t], 0.0)
                if root:
                    v = v * v  # compared with the squared best
                if v > best or (v >= best and j > best_index):
                    state[j] = SKIPPED
                    cnt += 1
        newly[c] = cnt
    return newly.sum()
