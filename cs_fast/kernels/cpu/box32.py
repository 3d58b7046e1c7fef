"""The pruned search's boxes in float32: bounds and counts with a rigorous error margin.

Used by :mod:`cs_fast.kernels.cpu.prune` when every coordinate is exactly a
float32 in a safe range (:func:`box32_columns`); the derivation of the margins
is the comment below.
"""

import math

import numpy as np
from numba import prange

from . import bounding, distances
from .bounding import FLOOR_SAMPLE, select
from .runtime import kernel

# These kernels inline bounding.py's and distances.py's: their sources join the cache key.
_KERNEL = {"depends": (distances, bounding)}

# --------------------------------------------------------------------------- float32 boxes
#
# Boxes are counted and bounded in float32 (eight SIMD lanes instead of four, half the
# memory traffic); only rows that may win get the float64 row brute force computes.
# Rigour: with u = 2**-24, coordinates exact in float32 and every non-zero one of
# magnitude in [2**-20, 2**40] (so every width, height, area, product and sum below is a
# normal float32: no underflow, no overflow), and A, B, I, U = A + B - I the two areas,
# the overlap and the union of two overlapping boxes (all > 0, I <= U, U >= (A + B) / 2):
#   A, B, I each carry three roundings: |A_hat - A| <= 3.1 u A (same for B, I);
#   U_hat = fl(fl(A_hat + B_hat) - I_hat): |U_hat - U| <= 12.1 u U;
#   L_hat = fl(U_hat - I_hat): |L_hat - (U - I)| <= 16.3 u U;
#   e = fl(1 - fl(I_hat / U_hat)): |e - d| <= 18 u, d = 1 - I / U the exact distance;
# and brute force's float64 value is within 2e-15 of d. Hence
#   * the count test L_hat < fl(loose * U_hat) with loose >= t + PAD (PAD = 2**-17 = 128 u)
#     holds for every pair whose float64 distance is < t (it needs PAD >= 43 u): the
#     count of pairs "below t" can only be too large, never too small, so a row it
#     settles truly cannot win, and a row it admits is decided by the float64 row;
#   * e is within TINY = 2**-17 of the float64 distance (7x the 18 u it needs): the
#     bounds of tighten and the pivot window take (eps, TINY) as their margin.
# Disjoint pairs are decided exactly (their distance is exactly 1, or 0 for two empty
# boxes, in float64 and here; the sign of a float difference is exact).
BOX32_PAD = 2.0 ** -17
BOX32_TINY = 2.0 ** -17
_BOX32_RANGE = (2.0 ** -20, 2.0 ** 40)
_Z32 = np.float32(0.0)
_ONE32 = np.float32(1.0)
PIVOT_BYTES = 384 * 2**20  # 16 pivots at 10^6 boxes (10.9 s vs 13.0 s with 128 MiB, 2 threads; +260 MiB)
PIVOT_BUCKETS = 2048


def box32_columns(F):
    """float32 ``(5, n)``: x1, y1, x2, y2 and the float32 area of each box, or None.

    None when some coordinate is not exactly a float32, or a non-zero one lies
    outside ``_BOX32_RANGE`` in magnitude: the float32 error bounds (see above)
    would not hold, and the float64 kernels are used instead.
    """
    F32 = F.astype(np.float32)
    if not np.array_equal(F32.astype(np.float64), F):
        return None
    mag = np.abs(F32)
    nz = mag[mag > 0]
    if nz.size and not (nz.min() >= _BOX32_RANGE[0] and nz.max() <= _BOX32_RANGE[1]):
        return None
    C = np.empty((5, F.shape[0]), np.float32)
    C[:4] = F32.T
    C[4] = (C[2] - C[0]) * (C[3] - C[1])  # float32 products: three roundings, as the bound assumes
    return C


@kernel(nogil=True, inline="always")
def loose32(t):
    """float32 ``>= t + BOX32_PAD`` (rounding to nearest moves ``x (1 + 2**-20)`` by less than ``2**-24 x``)."""
    return np.float32((t + BOX32_PAD) * (1.0 + 2.0 ** -20))


@kernel(nogil=True, inline="always")
def _box32_terms(ax1, ay1, ax2, ay2, aa, bx1, by1, bx2, by2, ba):
    """``(overlap, union - inter, union)`` of boxes a, b in float32: what every count test reads."""
    iw = max(min(ax2, bx2) - max(ax1, bx1), _Z32)
    ih = max(min(ay2, by2) - max(ay1, by1), _Z32)
    inter = iw * ih
    union = (aa + ba) - inter
    return (iw > _Z32) & (ih > _Z32), union - inter, union


@kernel(nogil=True, inline="always")
def _terms_below(overlap, gap, union, loose, one_below, zero_below):
    """The count test on :func:`_box32_terms`: may the float64 distance be below ``t``? (never a false no)."""
    return (overlap & (gap < loose * union)) | (
        (~overlap) & (((union > _Z32) & one_below) | ((union <= _Z32) & zero_below)))


@kernel(nogil=True, inline="always")
def _box32_below(ax1, ay1, ax2, ay2, aa, bx1, by1, bx2, by2, ba, loose, one_below, zero_below):
    """May the float64 distance of boxes a, b be below ``t``? (``loose = loose32(t)``; never a false no)."""
    overlap, gap, union = _box32_terms(ax1, ay1, ax2, ay2, aa, bx1, by1, bx2, by2, ba)
    return _terms_below(overlap, gap, union, loose, one_below, zero_below)


@kernel(nogil=True, inline="always")
def count32(ax1, ay1, ax2, ay2, aa, bx1, by1, bx2, by2, ba, loose, one_below, zero_below, simple):
    """How many boxes of the slices ``bx1 ... ba`` may lie below box a's threshold (:func:`_box32_below`).

    ``simple`` (every area > 0 and ``loose < 1``, so ``t < 1``): the bare test
    ``U - I < loose U`` alone, a third fewer operations. It is the same answer: a
    disjoint pair has ``I = 0`` exactly (the sign of a float difference is exact, so
    the clipped width or height is exactly 0) and ``U > 0``, so ``U < fl(loose U) <= U``
    is false, as ``d = 1 < t`` is; two empty boxes, whose distance 0 the bare test
    would miss, cannot occur.
    """
    c = 0
    if simple:
        for j in range(bx1.shape[0]):
            iw = max(min(ax2, bx2[j]) - max(ax1, bx1[j]), _Z32)
            ih = max(min(ay2, by2[j]) - max(ay1, by1[j]), _Z32)
            inter = iw * ih
            union = (aa + ba[j]) - inter
            c += (union - inter) < loose * union
    else:
        for j in range(bx1.shape[0]):
            c += _box32_below(ax1, ay1, ax2, ay2, aa, bx1[j], by1[j], bx2[j], by2[j], ba[j], loose, one_below,
                              zero_below)
    return c


@kernel(error_model="numpy", nogil=True, inline="always")
def _box32_value(ax1, ay1, ax2, ay2, aa, bx1, by1, bx2, by2, ba):
    """float32 Jaccard distance, within ``BOX32_TINY`` of the float64 one (exact for disjoint pairs).

    Its callers compile with ``error_model='numpy'``: numba's default guards every float
    division with a zero test, a branch that stops the loop vectorizing (7x slower,
    measured); the division here never sees a zero anyway (two empty boxes divide by 1).
    """
    iw = max(min(ax2, bx2) - max(ax1, bx1), _Z32)
    ih = max(min(ay2, by2) - max(ay1, by1), _Z32)
    inter = iw * ih
    union = (aa + ba) - inter
    overlap = (iw > _Z32) & (ih > _Z32)
    e = _ONE32 - inter / (union if overlap else _ONE32)  # no 0/0 for two empty boxes
    disjoint = _ONE32 if union > _Z32 else _Z32
    return e if overlap else disjoint


@kernel(nogil=True, **_KERNEL)
def floor32(row, k, scratch):
    """:func:`median_floor` for a float32 row, with a ladder of proposals before the exact selection.

    The proposal lies 1, then 2.5, then 6 standard deviations of the sample rank below
    the k-th (the first misses about a fifth of the rows, the second under 1 %); each
    miss costs one count pass, far less than the exact selection it replaces (with the
    1-sigma proposal alone, the selections of the 20 % of jittered-box rows it missed
    were most of the full rows' cost). Starting at 1.5 sigma gave looser floors and
    more full rows (6.76 % of n^2 evaluated instead of 6.47 %, slower). Compared in
    float32: the proposal is an element of the row.
    """
    n = row.shape[0]
    s = min(FLOOR_SAMPLE, n // 8)
    if s >= 512:
        sample = np.empty(s, np.float32)
        for t in range(s):
            sample[t] = row[(t * n) // s]
        sd = math.sqrt(s * 0.25)
        for mult in (1.0, 2.5, 6.0):
            a = int((k - 1) * s / n - mult * sd)
            if a < 0:
                break
            lo = distances.kth_smallest(sample, a + 1)  # reorders the sample; later ranks are still exact
            c = 0
            for t in range(n):
                c += row[t] < lo
            if c < k:
                return np.float64(lo)
    return np.float64(select(row, k, scratch))


@kernel(error_model="numpy", parallel=True, **_KERNEL)
def box32_bound_rows(C, FT, rows, k, best, best_index, out32, buf, scratch, med, bound):
    """Full float32 rows of ``rows`` for the bounds, and the exact median of each row that may win.

    Row ``r`` gets its float32 distances in ``out32[r]`` and counts those that may lie
    below its threshold (see :func:`finish_rows`). A row that reaches ``k`` gets brute
    force's float64 row (:func:`cs_fast.kernels.cpu.distances.box_row`) in ``buf[r]`` and its exact
    median in ``med`` and ``bound``; the others ``med = inf`` and in ``bound`` a value
    ``<=`` the k-th smallest float32 distance (:func:`floor32`).
    """
    n = C.shape[1]
    x1 = C[0]
    y1 = C[1]
    x2 = C[2]
    y2 = C[3]
    ar = C[4]
    for r in prange(rows.shape[0]):
        i = rows[r]
        t = best if i > best_index else np.nextafter(best, np.inf)
        loose = loose32(t)
        one_below = 1.0 < t
        zero_below = 0.0 < t
        ax1 = x1[i]
        ay1 = y1[i]
        ax2 = x2[i]
        ay2 = y2[i]
        aa = ar[i]
        row = out32[r]
        below = 0
        half = np.float32(0.5)
        for j in range(n):
            e = _box32_value(ax1, ay1, ax2, ay2, aa, x1[j], y1[j], x2[j], y2[j], ar[j])
            overlap = (min(ax2, x2[j]) > max(ax1, x1[j])) & (min(ay2, y2[j]) > max(ay1, y1[j]))
            row[j] = e
            # Disjoint pairs are exactly 1 (or 0): tested exactly; overlapping ones loosely.
            below += (overlap & (e < loose)) | ((~overlap) & (((e > half) & one_below) | ((e < half) & zero_below)))
        if below >= k:
            distances.box_row(FT, i, buf[r])
            med[r] = select(buf[r], k, scratch[r])
            bound[r] = med[r]
        else:
            med[r] = np.inf
            # After the pass over the row: a proposal computed first, counted on the way,
            # was slower (its strided sample misses the caches in five arrays).
            bound[r] = floor32(row, k, scratch[r])


@kernel(nogil=True, inline="always")
def _count_from(C, i, t, positive, x1, y1, x2, y2, ar):
    """How many boxes of the columns ``x1 ... ar`` may lie below ``t`` from box ``i`` (division-free)."""
    loose = loose32(t)
    return count32(C[0, i], C[1, i], C[2, i], C[3, i], C[4, i], x1, y1, x2, y2, ar, loose, 1.0 < t, 0.0 < t,
                    positive and loose < 1.0)


@kernel(error_model="numpy", nogil=True, inline="always")
def _box32_count_row(C, i, t, positive):
    """How many boxes may lie below ``t`` from box ``i`` (:func:`_box32_below`, division-free: 0.34 ns a pair)."""
    return _count_from(C, i, t, positive, C[0], C[1], C[2], C[3], C[4])


@kernel(error_model="numpy", parallel=True, **_KERNEL)
def box32_bound_open(C, FT, rows, k, best, best_index, Copen, out32, buf, scratch, med, bound, positive):
    """:func:`box32_bound_rows` that writes only the distances to the open rows, ``Copen``.

    ``Copen`` holds the float32 columns of the rows still open, contiguous (the
    caller's ``C[:, cols]``). The bounds need a full row's median only from below,
    and its distances only to the open rows (a third of them on average at 10^6
    jittered boxes), so the distances are computed only for those, and the bounds
    pass reads them in order instead of gathering them from whole rows. The floor: proposals
    from a strided sample of the row's float32 distances (1, 2.5 and 6 standard
    deviations of the sample rank below the k-th, as :func:`floor32`), each checked
    by one division-free count pass (:func:`_box32_count_row`); the first ``lo`` with
    fewer than ``k`` pairs that may be below it is the floor. The count never misses a
    pair whose float64 distance is below ``lo``, so at least ``n - k + 1`` of brute
    force's distances are ``>= lo``: what :func:`tighten` needs of ``bound``, and,
    when ``lo >= t`` (the row's threshold), proof that the row cannot win, with no
    count at ``t``. If every proposal fails, the exact median of the float32 row.
    Then ``out32[r, q]`` receives the float32 distance to open column ``q``. A row that
    may win gets brute force's float64 row and exact median, as before.
    """
    n = C.shape[1]
    nc = Copen.shape[1]
    o1 = Copen[0]
    p1 = Copen[1]
    o2 = Copen[2]
    p2 = Copen[3]
    oa = Copen[4]
    x1 = C[0]
    y1 = C[1]
    x2 = C[2]
    y2 = C[3]
    ar = C[4]
    s = min(FLOOR_SAMPLE, n // 8)
    sd = math.sqrt(s * 0.25)
    for r in prange(rows.shape[0]):
        i = rows[r]
        t = best if i > best_index else np.nextafter(best, np.inf)
        ax1 = x1[i]
        ay1 = y1[i]
        ax2 = x2[i]
        ay2 = y2[i]
        aa = ar[i]
        row = out32[r]
        floor = -np.inf
        proven = False  # floor >= t proves the row cannot win (a float64 guarantee)
        if s >= 512:
            sample = np.empty(s, np.float32)
            for q in range(s):
                j = (q * n) // s
                sample[q] = _box32_value(ax1, ay1, ax2, ay2, aa, x1[j], y1[j], x2[j], y2[j], ar[j])
            for mult in (1.0, 2.5, 6.0):
                a = int((k - 1) * s / n - mult * sd)
                if a < 0:
                    break
                lo = np.float64(distances.kth_smallest(sample, a + 1))  # reorders the sample; later ranks still exact
                if _box32_count_row(C, i, lo, positive) < k:
                    floor = lo
                    proven = lo >= t
                    break
        if floor == -np.inf:
            box32_row(C, i, row)
            floor = np.float64(select(row, k, scratch[r]))  # exact for the float32 distances
        if not proven and _box32_count_row(C, i, t, positive) >= k:
            distances.box_row(FT, i, buf[r])
            med[r] = select(buf[r], k, scratch[r])
            bound[r] = med[r]
        else:
            med[r] = np.inf
            bound[r] = floor
        for q in range(nc):
            row[q] = _box32_value(ax1, ay1, ax2, ay2, aa, o1[q], p1[q], o2[q], p2[q], oa[q])


@kernel(error_model="numpy", **_KERNEL)
def box32_pairs(C, I, J, t, e, below):
    """The float32 value and count test of pairs ``(I[p], J[p])`` at thresholds ``t[p]`` (for tests)."""
    for p in range(I.shape[0]):
        i = I[p]
        j = J[p]
        e[p] = _box32_value(C[0, i], C[1, i], C[2, i], C[3, i], C[4, i], C[0, j], C[1, j], C[2, j], C[3, j], C[4, j])
        below[p] = _box32_below(C[0, i], C[1, i], C[2, i], C[3, i], C[4, i], C[0, j], C[1, j], C[2, j], C[3, j],
                                C[4, j], loose32(t[p]), 1.0 < t[p], 0.0 < t[p])


@kernel(error_model="numpy", nogil=True, **_KERNEL)
def box32_row(C, i, out):
    """float32 distances of box ``i`` to every box (the pivot row)."""
    for j in range(C.shape[1]):
        out[j] = _box32_value(C[0, i], C[1, i], C[2, i], C[3, i], C[4, i], C[0, j], C[1, j], C[2, j], C[3, j], C[4, j])


@kernel(nogil=True, **_KERNEL)
def _walk32(C, i, cols, stop, hi, nonbelow, need, loose, one_below, zero_below, simple):
    """Count row ``i``'s float32 boxes ``cols[:, stop:hi]`` not below its threshold, from ``hi`` down, 1024 at a time.

    Stops as soon as ``nonbelow`` (the columns already known not below) reaches
    ``need``: the row then cannot win. Returns the new ``nonbelow`` and how many
    distances were evaluated. The one walk of both single-pivot and bucketed counting.
    """
    x1 = cols[0]
    y1 = cols[1]
    x2 = cols[2]
    y2 = cols[3]
    ar = cols[4]
    ax1 = C[0, i]
    ay1 = C[1, i]
    ax2 = C[2, i]
    ay2 = C[3, i]
    aa = C[4, i]
    done = 0
    j1 = hi
    while j1 > stop and nonbelow < need:
        j0 = max(stop, j1 - 1024)
        bx1 = x1[j0:j1]
        by1 = y1[j0:j1]
        bx2 = x2[j0:j1]
        by2 = y2[j0:j1]
        ba = ar[j0:j1]
        c = count32(ax1, ay1, ax2, ay2, aa, bx1, by1, bx2, by2, ba, loose, one_below, zero_below, simple)
        nonbelow += (j1 - j0) - c
        done += j1 - j0
        j1 = j0
    return nonbelow, done


@kernel(parallel=True, **_KERNEL)
def box32_count(Cs, ds, dpiv, C, FT, rows, k, best, best_index, reach, buf, scratch, med, evals, positive):
    """:func:`_box_count_pivot` in float32: ``Cs`` the float32 columns sorted by ``ds``."""
    n = C.shape[1]
    need = n - k + 1
    for r in prange(rows.shape[0]):
        i = rows[r]
        t = best if i > best_index else np.nextafter(best, np.inf)
        loose = loose32(t)
        one_below = 1.0 < t
        zero_below = 0.0 < t
        a = dpiv[i]
        lo = np.searchsorted(ds, a - t - reach, side="left")
        hi = np.searchsorted(ds, a + t + reach, side="right")
        nonbelow = n - (hi - lo)
        nonbelow, evals[r] = _walk32(C, i, Cs, lo, hi, nonbelow, need, loose, one_below, zero_below,
                                     positive and loose < 1.0)
        if nonbelow < need:  # the row may win: brute force's float64 row and exact median
            distances.box_row(FT, i, buf[r])
            evals[r] += n
            med[r] = select(buf[r], k, scratch[r])
        else:
            med[r] = np.inf


@kernel(parallel=True, **_KERNEL)
def pivot_buckets(C, dp, nb, Cs, start):
    """Counting sort of the columns by their float32 distance to each pivot: ``nb`` buckets of width ``1 / nb``.

    Bucket ``b < nb`` holds exactly the columns with ``b / nb <= dp[p, c] < (b + 1) / nb``
    (``nb`` a power of two: ``dp * nb`` is exact, its truncation too), bucket ``nb`` the
    distance 1. ``Cs[p]`` receives the float32 columns in bucket order, ``start[p, b]``
    the first position of bucket ``b`` (``start[p, nb + 1] = n``). Linear time: the
    counting pass only needs a window's edges to ``1 / nb``, not a full sort.
    """
    P = dp.shape[0]
    n = dp.shape[1]
    for p in prange(P):
        cnt = np.zeros(nb + 2, np.int64)
        for j in range(n):
            b = min(max(int(dp[p, j] * nb), 0), nb)
            cnt[b + 1] += 1
        for b in range(nb + 1):
            cnt[b + 1] += cnt[b]
        for b in range(nb + 2):
            start[p, b] = cnt[b]
        for j in range(n):
            b = min(max(int(dp[p, j] * nb), 0), nb)
            q = cnt[b]
            cnt[b] = q + 1
            for c in range(5):
                Cs[p, c, q] = C[c, j]


@kernel(parallel=True, **_KERNEL)
def box32_count_pivots(Cs, start, dp, nb, C, FT, rows, k, best, best_index, reach, buf, scratch, med, evals,
                        positive):
    """The float32 box counting pass against the nearest of several bucketed pivots.

    Row i takes the pivot p nearest to it (``a = dp[p, i]``). A column c can be below
    the row's threshold t only if ``|dp[p, c] - a| < t + reach`` (triangle inequality,
    ``reach`` covering the float32 rounding of both distances): whole buckets outside
    that window count as not below unevaluated. Inside it, columns with ``dp[p, c]``
    below ``t - a`` are (up to rounding) below, so the walk covers only the shell
    ``[t - a, a + t + reach)``, from its far end: a row near its pivot (a small) settles
    after few distances. A row the shell does not settle gets brute force's float64
    row and exact median, so a misjudged shell edge costs time, never exactness.
    """
    n = C.shape[1]
    P = dp.shape[0]
    need = n - k + 1
    for r in prange(rows.shape[0]):
        i = rows[r]
        t = best if i > best_index else np.nextafter(best, np.inf)
        loose = loose32(t)
        one_below = 1.0 < t
        zero_below = 0.0 < t
        p = 0
        a32 = dp[0, i]
        for q in range(1, P):
            if dp[q, i] < a32:
                a32 = dp[q, i]
                p = q
        a = np.float64(a32)
        top = (a + t + reach) * nb
        bot = (a - t - reach) * nb
        bhi = nb + 1 if not top < nb else int(math.floor(top)) + 1  # buckets >= bhi: all > a + t + reach
        blo = 0 if not bot > 0.0 else min(int(math.floor(bot)), bhi)  # buckets < blo: all < a - t - reach
        hi = start[p, bhi]
        lo = start[p, blo]
        nonbelow = n - (hi - lo)
        sb = (t - a) * nb
        bstop = blo if not sb > blo else min(int(math.floor(sb)), bhi)
        stop = start[p, bstop]
        nonbelow, evals[r] = _walk32(C, i, Cs[p], stop, hi, nonbelow, need, loose, one_below, zero_below,
                                     positive and loose < 1.0)
        if nonbelow < need:  # the row may win: brute force's float64 row and exact median
            distances.box_row(FT, i, buf[r])
            evals[r] += n
            med[r] = select(buf[r], k, scratch[r])
        else:
            med[r] = np.inf


@kernel(**_KERNEL)
def nearest_pivot(dp, rows, pidx, pa):
    """For each row, the pivot nearest to it (``pidx``) and that float32 distance (``pa``)."""
    P = dp.shape[0]
    for r in range(rows.shape[0]):
        i = rows[r]
        p = 0
        a = dp[0, i]
        for q in range(1, P):
            if dp[q, i] < a:
                a = dp[q, i]
                p = q
        pidx[r] = p
        pa[r] = a


@kernel(parallel=True, **_KERNEL)
def box32_count_groups(Cs, start, nb, C, FT, rows, perm, pidx, pa, groups, k, best, best_index, reach,
                        hi, stop, nonb, scratch_len, med, evals, positive):
    """:func:`box32_count_pivots` for groups of rows that share a pivot, walking column blocks together.

    ``perm`` orders the tile's rows by (pivot, distance to it); ``groups`` cuts that order
    into groups of one pivot. A group walks its pivot's bucketed columns from the top in
    blocks of 1024, and every row of the group whose shell meets the block counts it
    while the block is in cache (at 10^6 boxes one pivot's columns are 24 MB: a row on
    its own streams its shell from memory). Each row's window, shell, count and exit are
    those of :func:`box32_count_pivots`; only the order of the work changes.
    """
    n = C.shape[1]
    need = n - k + 1
    for g in prange(groups.shape[0] - 1):
        q0 = groups[g]
        q1 = groups[g + 1]
        p = pidx[perm[q0]]
        top = 0
        low = n
        for q in range(q0, q1):
            r = perm[q]
            i = rows[r]
            t = best if i > best_index else np.nextafter(best, np.inf)
            a = np.float64(pa[r])
            up = (a + t + reach) * nb
            dn = (a - t - reach) * nb
            bhi = nb + 1 if not up < nb else int(math.floor(up)) + 1
            blo = 0 if not dn > 0.0 else min(int(math.floor(dn)), bhi)
            sb = (t - a) * nb
            bstop = blo if not sb > blo else min(int(math.floor(sb)), bhi)
            hi[q] = start[p, bhi]
            stop[q] = start[p, bstop]
            nonb[q] = n - (start[p, bhi] - start[p, blo])
            evals[r] = 0
            top = max(top, hi[q])
            low = min(low, stop[q])
        x1 = Cs[p, 0]
        y1 = Cs[p, 1]
        x2 = Cs[p, 2]
        y2 = Cs[p, 3]
        ar = Cs[p, 4]
        j1 = top
        active = True
        while j1 > low and active:
            j0 = max(low, j1 - 1024)
            active = False
            for q in range(q0, q1):
                if nonb[q] >= need:
                    continue
                a0 = max(j0, stop[q])
                a1 = min(j1, hi[q])
                if a1 > a0:
                    r = perm[q]
                    i = rows[r]
                    t = best if i > best_index else np.nextafter(best, np.inf)
                    c = _count_from(C, i, t, positive, x1[a0:a1], y1[a0:a1], x2[a0:a1], y2[a0:a1], ar[a0:a1])
                    nonb[q] += (a1 - a0) - c
                    evals[r] += a1 - a0
                if nonb[q] < need and stop[q] < j0:
                    active = True
            j1 = j0
        for q in range(q0, q1):
            r = perm[q]
            if nonb[q] < need:
                # Rare (a row that may win, or a misjudged shell): its own buffers, so that the
                # tiles of counted rows need not hold a float64 row each.
                i = rows[r]
                full = np.empty(n)
                distances.box_row(FT, i, full)
                evals[r] += n
                med[r] = select(full, k, np.empty(scratch_len))
            else:
                med[r] = np.inf
