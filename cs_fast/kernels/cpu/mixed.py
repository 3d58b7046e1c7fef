"""Mixed-precision ``sq``/``l2`` on the host: one float32 BLAS product, the bound, float64 only where it cannot decide.

What it guarantees
------------------
* :func:`min_median` returns the index and radius of brute force over the
  canonical float64 distances (:func:`cs_fast.kernels.cpu.distances.rows`: ``sq`` or,
  with ``weights``, ``wsq``; the ones ``to_center`` returns), bit for bit;
  ties go to the smallest index.
* :func:`pairwise` / :func:`condensed` (float32 output) are within relative
  :data:`~cs_fast.kernels.mixed_precision.CDIST_RTOL` of the canonical float64
  distance, plus the float32 rounding of the result (``l2``: of its square
  root).

Every decision goes through the one bound,
:func:`cs_fast.kernels.mixed_precision.sq_interval` (the device path in
:mod:`cs_fast.kernels.cuda` compiles the same function), with float32
estimates (``estimate_roundoff = U32``).

How, and why it is as fast as a plain float32 GEMM
--------------------------------------------------
The float32 peers (``|a|^2 + |b|^2 - 2 A B^T`` and ``np.partition``) pay the
product, three or four ``n x n`` temporaries and a selection in every row.
Here the product of one set with itself is ``X @ X.T``, which numpy hands to
BLAS as a symmetric rank-k update (SYRK, half the flops of a GEMM; the peers
get the same call, so the product costs both sides the same). What differs is
the rest:

* the shift that centres the rows is the mean of at most :data:`SHIFT_ROWS`
  rows spread over the set, not a pass over all of them (any shift is exact:
  translating every row changes no distance; the bound uses the centred norms
  it actually gets, so a slightly worse shift only widens intervals a little);
  centring, the float32 conversion and the float64 norms are one pass;
* ``min_median`` selects in no row it does not have to. ``U``, an upper bound
  of the smallest lower median, comes from the exact selection of a few rows
  (the ones with the smallest centred norm: the lower median of row ``i`` is
  about ``|x_i|^2`` plus a common term, so they are near the best). Then one
  branch-free counting pass over the product, with no temporary, gives each
  row the number of its estimates below ``tau_i``, the smallest value whose
  interval (with the largest column norm) starts above ``U``
  (:func:`count_thresholds`; the bound is non-decreasing in the estimate, so
  one evaluation of the compiled bound at ``tau_i`` proves it). A row with
  fewer than ``k`` such estimates has fewer than ``k`` canonical distances
  ``<= U``: its median exceeds ``U`` and it cannot win. Only the rows left
  get a selection and an interval, as before;
* the radius needs the canonical lower median of the rows that can still
  win, not their whole float64 row: with the per-entry intervals of the row,
  ``L`` and ``H`` the ``k``-th smallest lower and upper ends, every entry
  with ``hi < L`` lies below the median and every entry with ``lo > H``
  above it; only the entries in between are summed in float64 (by the
  canonical kernel, so they carry the same bits) and the median is their
  ``(k - below)``-th smallest (:func:`exact_median`);
* when the ``n x n`` float32 product exceeds the memory budget, the rows go
  in tiles, and each tile computes only its block of the lower triangle
  (``X[i0:i1] @ X[i0:i1].T``, a SYRK, and ``X[i0:i1] @ X[:i0].T``): counted
  for its rows, and mirrored for the columns before ``i0``, so the tiled
  product keeps SYRK's half of the flops (the previous path multiplied full
  rows, twice the work).

Float64 output, and centred norms beyond what a float32 GEMM can hold
(:data:`~cs_fast.kernels.mixed_precision.MAX_NORM2`), stay with the float64
kernels of :mod:`cs_fast.kernels.cpu.distances`.
"""

import math

import numba
import numpy as np

from .. import reductions
from . import distances
from .. import mixed_precision as mp
from .runtime import kernel

#: The centring shift is the mean of at most this many rows (spread evenly over the set).
SHIFT_ROWS = 32
#: Rows with the smallest centred norms whose exact median bound starts the counting pass.
SEED_ROWS = 4

_kth_smallest = distances.kth_smallest  # select.kth_smallest, compiled for the CPU (numba binds it by name)
_sq_interval = distances.sq_interval  # the one bound, compiled for the CPU


@kernel(depends=(distances,))
def _sample_mean(F, step, count, out):
    # Mean of rows 0, step, 2 step, ... (count of them), summed in float64.
    out[:] = 0.0
    for r in range(count):
        for k in range(F.shape[1]):
            out[k] += np.float64(F[r * step, k])
    for k in range(F.shape[1]):
        out[k] /= count


def shift_of(F):
    """A centring shift in ``F``'s dtype: the mean of at most :data:`SHIFT_ROWS` rows spread over ``F``.

    Any shift gives the same distances; float32 rows keep a float32 shift so
    that ``F - shift`` is one float32 rounding (step 4 of the bound).
    """
    n = F.shape[0]
    mean = np.zeros(F.shape[1])
    if n:
        step = max(1, n // SHIFT_ROWS)
        _sample_mean(F, step, min(SHIFT_ROWS, (n - 1) // step + 1), mean)
    return mean.astype(F.dtype)


def centred(F, shift, r=None):
    """``X = fl32(F - shift)`` and the float64 norms² of its rows, in one pass (the product's inputs).

    ``r``: float64 ``sqrt(w)`` of weighted rows, applied after centring (``X = fl32((F - shift) r)``).
    """
    X = np.empty(F.shape, dtype=np.float32)
    na = np.empty(F.shape[0])
    if F.shape[0]:
        distances.centre32(F, shift, X, na, r)
    return X, na


# ----------------------------------------------------------------------------- min_median


@kernel(depends=(distances,))
def _ceil32(t):
    # The smallest float32 >= t (a count against it includes every estimate < t).
    x = np.float32(t)
    if np.float64(x) < t:
        x = np.nextafter(x, np.float32(np.inf))
    return x


@kernel(depends=(distances,))
def count_thresholds(a, amax, coef, U, tau):
    # tau[i] (float32): every float32 estimate dt >= tau[i] of row i has, with any
    # column norm <= amax, an interval whose lower end exceeds U. The closed-form
    # inverse of sq_interval's lower end is only a start: the compiled bound at
    # tau[i] decides (it is non-decreasing in dt, and non-increasing in a_j, so
    # one evaluation there covers every larger estimate and every column).
    c, c64, rho, g, abs_sq, abs_eps = coef
    safety = mp.SAFETY
    y = math.sqrt(U / ((1.0 - g) * (1.0 - safety)))
    for i in range(a.shape[0]):
        ai = a[i]
        e = (2.0 * c * ai * amax + c64 * (ai * ai + amax * amax) + abs_sq) * (1.0 + safety)
        eps = (rho * (ai + amax) + abs_eps) * (1.0 + safety)
        r = (y + eps) / (1.0 - safety)
        t = (e + r * r) * (1.0 + 2.0 ** -30) + 1e-300
        tf = _ceil32(t)
        while tf < np.inf:
            lo, _ = _sq_interval(np.float64(tf), ai, amax, c, c64, rho, g, abs_sq, abs_eps)
            if lo > U:
                break
            tf = _ceil32(2.0 * np.float64(tf))
        tau[i] = tf


@kernel(depends=(distances,))
def _count_block(D, L, i0, na32, tau, counts):
    # Rows i0 .. i0 + len(D) of the product: D against the same rows (the diagonal
    # block), L against the rows before them (columns 0 .. i0, the block lower triangle).
    # Row i = i0 + r gets #{j : estimate_ij < tau[i]} over both; a column j < i0 (the
    # pair's other half, in no later block) gets estimate_ij < tau[j]. The same float32
    # estimates as _row_estimates, counted without storing them; branch-free.
    for r in range(D.shape[0]):
        i = i0 + r
        ni = na32[i]
        t = tau[i]
        below = 0
        for c in range(D.shape[1]):
            g = D[r, c]
            below += ((ni + na32[i0 + c]) - (g + g)) < t
        for j in range(L.shape[1]):
            g = L[r, j]
            e = (ni + na32[j]) - (g + g)
            below += e < t
            counts[j] += e < tau[j]
        counts[i] += below


@kernel(depends=(distances,))
def _row_estimates(Grow, ni, na32, out):
    # The float32 estimates of one row of the product (the bound's dt with
    # estimate_roundoff = U32; g + g is exact).
    for j in range(Grow.shape[0]):
        g = Grow[j]
        out[j] = (ni + na32[j]) - (g + g)


@kernel(depends=(distances,))
def _median_intervals(G, local, rows, na32, a, amax, coef, k, lo, hi, buf):
    # For row rows[r] (held in G[local[r]]): an interval for its canonical lower median,
    # from the k-th smallest estimate with the largest column norm (both ends of the
    # interval are non-decreasing in dt and widen with a_j).
    c, c64, rho, g, abs_sq, abs_eps = coef
    for r in range(rows.shape[0]):
        i = rows[r]
        _row_estimates(G[local[r]], na32[i], na32, buf)
        m = _kth_smallest(buf, k)
        lo[i], hi[i] = _sq_interval(np.float64(m), a[i], amax, c, c64, rho, g, abs_sq, abs_eps)


@kernel(depends=(distances,))
def _entry_intervals(Grow, na32, i, a, coef, lo, hi):
    # Per-entry intervals of row i (each with its own column norm); Grow is its product row.
    c, c64, rho, g, abs_sq, abs_eps = coef
    ni = na32[i]
    ai = a[i]
    for j in range(Grow.shape[0]):
        gij = Grow[j]
        dt = (ni + na32[j]) - (gij + gij)
        lo[j], hi[j] = _sq_interval(np.float64(dt), ai, a[j], c, c64, rho, g, abs_sq, abs_eps)


def exact_median(F, Grow, na32, i, a, coef, k, w=None):
    """The canonical lower median of row ``i`` (the ``k``-th smallest of :func:`cpu.sq_rows`' row), exactly.

    Entries whose interval lies wholly below ``L`` (the ``k``-th smallest lower
    end) are below the median; entries wholly above ``H`` (the ``k``-th
    smallest upper end) are above it; fewer than ``k`` lie below (``L`` is the
    ``k``-th smallest lower end) and at least ``k`` start at or below ``H``.
    The median is then the ``(k - below)``-th smallest canonical distance of
    the entries in between, which alone are summed in float64. Returns
    ``(median, entries summed)``.
    """
    from .exact import median_within

    n = Grow.shape[0]
    lo = np.empty(n)
    hi = np.empty(n)
    _entry_intervals(Grow, na32, i, a, coef, lo, hi)
    return median_within("sq" if w is None else "wsq", F, w, i, lo, hi, k)


def sqrt_bucket_top(U):
    """The largest ``V`` (rounded up) such that ``fl(sqrt(m)) <= fl(sqrt(U))`` implies ``m <= V``."""
    s = np.nextafter(math.sqrt(U), np.inf)
    return float(np.nextafter(s * s, np.inf))


def _gram(reduction, arg):
    """``(take_sqrt, weights)`` of a sum of squared differences (``sq``, ``l2``, ``wsq``) and its argument."""
    R = reductions.get(reduction)
    if not R.gram:
        raise ValueError(f"reduction: received {R.name!r}; expected a sum of squared differences (sq, l2, wsq)")
    return R.root, (arg if R.weighted else None)


def min_median(reduction, F, arg, tile, stats=None):
    """:func:`cs_fast.min_median` for ``sq``/``l2`` on the host: index and radius of brute force, bit for bit.

    ``U`` from the exact selection of :data:`SEED_ROWS` rows, then the
    product of the centred rows in row tiles of ``tile`` rows (the caller's
    memory budget): one symmetric product (SYRK) when all rows fit one tile,
    else for each tile its block of the lower triangle (the diagonal block a
    SYRK, the rest a GEMM: half the flops of full rows; at most ``tile`` x
    ``(n + tile)`` float32 at once), counted for its rows and, mirrored, for
    its columns (:func:`_count_block`). The rows the count leaves get a
    selection and an interval, the rows whose lower end is at most the
    smallest upper end an exact median (:func:`exact_median`), in order of
    their lower ends. Centred norms beyond float32's GEMM:
    :func:`cs_fast.kernels.cpu.distances.sq_min_median` (every row in float64).

    ``stats``, a dict, gets ``candidates`` (rows whose lower end is at most
    the smallest upper end), ``refined`` (rows whose median was computed
    exactly), ``summed`` (float64 distances computed for them), ``evaluated``
    (``n^2``: every pair in the product) and ``recomputed`` (``summed``).
    ``reduction`` is ``sq``, ``l2`` (the roots of ``sq``) or ``wsq``, whose
    ``arg`` holds the float64 weights of ``sqfeat``: the product reads the
    centred rows scaled by ``sqrt(w)``, the bound is the weighted one
    (``mp.sq_coefficients(weighted=True)``) and the exact medians are the
    canonical weighted distances.
    """
    take_sqrt, weights = _gram(reduction, arg)
    n, d = F.shape
    k = (n + 1) // 2
    weighted = weights is not None
    X, na = centred(F, shift_of(F), np.sqrt(weights) if weighted else None)
    if not na.max() < mp.MAX_NORM2:
        index, radius, candidates = distances.sq_min_median(F, take_sqrt, tile, weights)
        if stats is not None:
            stats.update(candidates=candidates, refined=candidates, summed=candidates * n, evaluated=n * n,
                         recomputed=candidates * n)
        return index, radius
    coef = mp.sq_coefficients(d, estimate_roundoff=mp.U32, weighted=weighted)
    a = mp.norm_upper(na, d)
    amax = float(a.max())
    na32 = na.astype(np.float32)
    tile = max(1, min(n, int(tile)))
    lo = np.full(n, np.inf)
    hi = np.full(n, np.inf)
    buf = np.empty(n, dtype=np.float32)
    seeds = np.argsort(na, kind="stable")[: min(n, SEED_ROWS)].astype(np.int64)
    whole = tile == n
    G = X @ X.T if whole else X[seeds] @ X.T  # float32 BLAS; X @ X.T is a SYRK
    _median_intervals(G, seeds if whole else np.arange(seeds.size), seeds, na32, a, amax, coef, k, lo, hi, buf)
    U = float(hi[seeds].min())
    # l2 decides on square roots: a row whose sq median rounds to the same root as U may still tie.
    tau = np.empty(n, dtype=np.float32)
    count_thresholds(a, amax, coef, sqrt_bucket_top(U) if take_sqrt else U, tau)
    counts = np.zeros(n, dtype=np.int64)
    if whole:
        _count_block(G, G[:, :0], 0, na32, tau, counts)
    else:
        for i0 in range(0, n, tile):
            i1 = min(n, i0 + tile)
            T = X[i0:i1]
            _count_block(T @ T.T, T @ X[:i0].T, i0, na32, tau, counts)  # a SYRK and a GEMM
    rows = np.flatnonzero(counts >= k)  # includes the row that gave U: its median is <= U
    rest = rows[~np.isin(rows, seeds)].astype(np.int64)
    if whole:
        _median_intervals(G, rest, rest, na32, a, amax, coef, k, lo, hi, buf)
    else:
        for c0 in range(0, rest.size, tile):
            chunk = rest[c0:c0 + tile]
            _median_intervals(X[chunk] @ X.T, np.arange(chunk.size), chunk, na32, a, amax, coef, k, lo, hi, buf)
    lo, hi = lo[rows], hi[rows]
    if take_sqrt:
        lo, hi = np.sqrt(lo), np.sqrt(hi)  # compare where the answer lives
    order = np.argsort(lo, kind="stable")  # ties in the lower end: smaller index first
    order = order[: int(np.searchsorted(lo[order], hi.min(), side="right"))]
    best, best_index, refined, summed = np.inf, -1, 0, 0
    for r in order:
        i = int(rows[r])
        if lo[r] > best:
            break  # sorted by lower end: no later row can win
        if lo[r] == best and i > best_index:
            continue  # its median is >= best and a tie keeps the smaller index
        Grow = G[i] if whole else (X[i:i + 1] @ X.T)[0]
        m, s = exact_median(F, Grow, na32, i, a, coef, k, weights)
        refined += 1
        summed += s
        if take_sqrt:
            m = math.sqrt(m)
        if m < best or (m == best and i < best_index):
            best, best_index = m, i
    if stats is not None:
        # every pair in float32, the undecided rows' pairs again in float64
        stats.update(candidates=int(order.size), refined=refined, summed=summed, evaluated=n * n, recomputed=summed)
    return best_index, float(best)


# ----------------------------------------------------------------------------- cdist / pdist


@kernel(depends=(distances,))
def _estimates_rows(G, naA, naB, T, self_offset, flags, i0, i1):
    # G[i, j] <- (na_i + na_j) - 2 G[i, j] in float32 (the bound's float32 estimates; naA, naB
    # the float32 norms); flags[i]: how many fall below the row's keep threshold (those go to
    # distances.sq_fix_rows, which keeps an estimate >= T[i] and re-tests the rest one by one).
    # Branch-free: vectorizes. Row i of A is row i + self_offset of B where both are the
    # same rows: that canonical distance is exactly 0 (fl(x - x) = 0), so it is set, not
    # summed in float64 (which the bound alone would ask for: its estimate is near 0).
    # float32 arithmetic (16 lanes; estimate_roundoff = U32 counts the norms' rounding and both
    # operations; g + g is exact), compared with the float32 ceiling of the row's threshold.
    for i in range(i0, i1):
        nai = naA[i]
        Ti = _ceil32(T[i])
        below = 0
        for j in range(G.shape[1]):
            g = G[i, j]
            v = (nai + naB[j]) - (g + g)
            G[i, j] = v
            below += v < Ti
        j = i + self_offset
        if 0 <= j < G.shape[1]:
            below -= G[i, j] < Ti
            G[i, j] = 0.0
        flags[i] = below


@kernel(depends=(distances,), parallel=True)
def _finish_parallel(A, B, G, naA, naB, aA, aB, T, self_offset, flags, coef, rtol, block, w):
    n = G.shape[0]
    for b in numba.prange((n + block - 1) // block):
        i0 = b * block
        i1 = min(n, i0 + block)
        _estimates_rows(G, naA, naB, T, self_offset, flags, i0, i1)
        distances.sq_fix_rows(A, B, G, aA, aB, T, flags, coef, rtol, i0, i1, w)


# No row of A is a row of B (see _estimates_rows).
_NO_SELF = np.iinfo(np.int64).min // 2


def _finish(A, B, XA, naA, XB, naB, take_sqrt, rtol, self_offset=_NO_SELF, w=None):
    # The float32 product of centred rows, float32 estimates and cpu's keep/fix kernels
    # (an entry whose own interval is wider than rtol is summed in float64).
    # Each max on its own: NaN propagates through ndarray.max, not through Python's max().
    if not (naA.max(initial=0.0) < mp.MAX_NORM2 and naB.max(initial=0.0) < mp.MAX_NORM2):
        return None  # too large for a float32 GEMM, or not finite (NaN or inf in the input)
    d = A.shape[1]
    coef = mp.sq_coefficients(d, estimate_roundoff=mp.U32, weighted=w is not None)
    G = XA @ XB.T  # float32 BLAS; XA @ XA.T (one set with itself) is a SYRK
    aA = mp.norm_upper(naA, d)
    aB = aA if naB is naA else mp.norm_upper(naB, d)
    T = np.empty(len(aA))
    distances.accept_thresholds(aA, float(aB.max(initial=0.0)), coef, float(rtol), T)
    flags = np.empty(len(aA), dtype=np.int64)
    naA32 = naA.astype(np.float32)
    naB32 = naA32 if naB is naA else naB.astype(np.float32)
    if G.size * 8 < distances.SERIAL_WORK:  # right after BLAS (its threads still spin) one thread is faster
        _estimates_rows(G, naA32, naB32, T, self_offset, flags, 0, G.shape[0])
        distances.sq_fix_rows(A, B, G, aA, aB, T, flags, coef, float(rtol), 0, G.shape[0], w)
    else:
        _finish_parallel(A, B, G, naA32, naB32, aA, aB, T, self_offset, flags, coef, float(rtol), 16, w)
    if take_sqrt:
        np.sqrt(G, out=G)
    return G


def pairwise(reduction, A, B, arg, rtol=mp.CDIST_RTOL):
    """float32 ``(len(A), len(B))`` ``sq``/``l2`` distances, each within relative ``rtol`` of the canonical float64 one.

    Rows centred on :func:`shift_of` ``A``; ``A`` and ``B`` the same rows
    (``cdist(X, X)``) share one centred copy and one symmetric product.
    Returns None when the centred norms are too large for a float32 GEMM or
    not finite (a NaN or inf in the input: the caller's finiteness check then
    raises; else it sums in float64). ``reduction`` and ``arg`` as in :func:`min_median`.
    """
    take_sqrt, weights = _gram(reduction, arg)
    shift = shift_of(A)
    r = None if weights is None else np.sqrt(weights)
    XA, naA = centred(A, shift, r)
    if distances.same_rows(A, B):
        return _finish(A, B, XA, naA, XA, naA, take_sqrt, rtol, self_offset=0, w=weights)
    XB, naB = centred(B, shift, r)
    return _finish(A, B, XA, naA, XB, naB, take_sqrt, rtol, w=weights)


@kernel(depends=(distances,))
def _condense_rows(G, i0, j0, n, out):
    # Rows i0.. of the full matrix (G[r, c] is the distance of rows i0 + r and j0 + c)
    # into pdist's condensed order: row i holds j = i + 1 .. n - 1 at i n - i (i + 1) / 2.
    for r in range(G.shape[0]):
        i = i0 + r
        pos = i * n - i * (i + 1) // 2
        for j in range(i + 1, n):
            out[pos + j - i - 1] = G[r, j - j0]


def condensed(reduction, F, arg, max_bytes, rtol=mp.CDIST_RTOL):
    """``pdist`` of ``sq``/``l2`` in float32, within relative ``rtol`` (as :func:`pairwise`).

    Centres once; one symmetric product when the float32 ``n x n`` matrix
    fits in ``max_bytes``, else row tiles against the rows after them (the
    upper triangle only). Returns None when the centred norms are too large
    for a float32 GEMM. ``reduction`` and ``arg`` as in :func:`min_median`.
    """
    take_sqrt, weights = _gram(reduction, arg)
    n = F.shape[0]
    out = np.empty(n * (n - 1) // 2, dtype=np.float32)
    X, na = centred(F, shift_of(F), None if weights is None else np.sqrt(weights))
    if 4 * n * n <= max_bytes:
        G = _finish(F, F, X, na, X, na, take_sqrt, rtol, self_offset=0, w=weights)
        if G is None:
            return None
        _condense_rows(G, 0, 0, n, out)
        return out
    tile = max(1, int(max_bytes) // (4 * n))
    for i0 in range(0, n - 1, tile):
        i1 = min(n - 1, i0 + tile)
        G = _finish(F[i0:i1], F[i0 + 1:], X[i0:i1], na[i0:i1], X[i0 + 1:], na[i0 + 1:], take_sqrt, rtol,
                    self_offset=-1, w=weights)
        if G is None:
            return None
        _condense_rows(G, i0, i0 + 1, n, out)
    return out
