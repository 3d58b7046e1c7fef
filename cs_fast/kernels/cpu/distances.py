"""CPU kernels (numba ``njit``/``prange``): compute only, no validation, no policy.

All inputs are featurized, C-contiguous 2-D arrays (see :mod:`cs_fast.metrics`).
Distances are accumulated in float64; outputs are written in the dtype of the
``out`` array the caller passes.

What it guarantees: one arithmetic per pair. :func:`rows` is the canonical
float64 distance of every metric on the CPU; ``to_center``, ``paired``,
float64 ``cdist``/``pdist``, every exact median of ``min_median`` (brute
force, pruned, and the refinements of :mod:`cs_fast.kernels.cpu.exact` and
:mod:`cs_fast.kernels.cpu.mixed`) and the certification distances all read it,
so the same pair has the same bits whoever asks, and ``d(a, b)`` and
``d(b, a)`` round alike. The canonical arithmetic takes the samples'
difference first (exact for nearby floats) and stays within each metric's
stated bound of the exact distance (:mod:`cs_fast.metrics`). Everything else
here is an *estimate*: fast, within a stated bound, used only to decide
(counts, pruning, candidates) or as float32 output.

Kernels and why they look the way they do:

* canonical rows (:func:`rows`, :func:`row_kernels`): the long sums ``sq``,
  ``wsq``, ``l1`` (``_rows_block`` bound to an inline sum) and ``tv``
  (``_tv_rows_block``: the samples' difference once per pair, its neighbour
  differences from it) -- each distance one compiled loop, reassociated so
  LLVM vectorizes it, whose order is then fixed --, :func:`box_row` /
  :func:`box_rows_to` (boxes: ``box_value``, strict, vectorized), and the
  strict pair functions of :data:`K` for masks and angles (``_rows_block``). ``fastmath=False`` is
  written out on the strict ones: numba compiles a function whose options
  leave it unset with the fastmath of its first jitted caller, and caches it
  so.
* ``pairwise_<reduction>``: generic, one pair function per entry, rows in
  parallel (strict: the same bits as :func:`rows`).
* :func:`l1_pairwise`: the long L1 estimate (``l1`` rows, ``tv`` on its
  centred features). Register-blocked 2 x 4 rows over feature chunks that fit
  the caches, chunk sums in the storage dtype (vectorized), added to float64
  accumulators per chunk: float32 ``cdist``/``pdist`` and the estimate pass of
  ``min_median``.
* :func:`tv_estimate`: the centred tv features and the norms of their bound.
* :func:`sq_pairwise_mixed`, :func:`sq_min_median`: the float32 GEMM (BLAS)
  on centred (weighted: scaled) rows with the rigorous per-entry bound of
  :mod:`cs_fast.kernels.mixed_precision`; only what the bound cannot decide
  is recomputed in float64. :func:`sq_pairwise` (float64 GEMM with a
  cancellation guard) stays for the benchmarks' comparison.
* ``fused_tile_<reduction>`` / :func:`tile_select` / :func:`box_fused_tile`:
  the per-row lower median for :func:`min_median`, with pruning (see there);
  with ``slack`` the estimate pass of :mod:`cs_fast.kernels.cpu.exact`.

Every kernel is compiled by :func:`cs_fast.kernels.cpu.runtime.kernel` (numba's
on-disk cache, keyed also on the pair/select/features sources it inlines), and
the generic drivers are plain templates bound per reduction by
:func:`cs_fast.kernels.cpu.runtime.specialize`, never closures: numba cannot cache a
closure over compiled functions. New kernels follow the same two rules.
"""

import math

import numba
import numpy as np
from numba import prange

from .. import features, mixed_precision, pair, reductions, select
from ..retarget import retarget
from .runtime import kernel, specialize

# reassoc lets LLVM vectorize float reductions; nnan/ninf stay off so NaN and inf
# keep their IEEE meaning (inputs are checked finite anyway). Only on estimates
# (counting tests, float32 fast paths) and on the canonical row kernels, whose
# one compiled loop fixes the order.
FASTMATH = {"reassoc", "contract", "nsz"}

# Reassociation only (no nnan/ninf, no FMA contraction): lets LLVM vectorize the
# float64 reductions, keeps NaN/inf propagation (tests/test_fastmath.py).
_PAIR_FASTMATH = {"reassoc", "nsz"}
# The pair functions in strict IEEE arithmetic: every driver that inlines one
# (counts, full rows, to_center) gets the same bits for the same pair. fastmath=False
# is written out: numba compiles a function whose options leave fastmath unset with
# the fastmath of the first jitted caller (and caches it so), which would let a
# fastmath counting kernel fuse or reorder the canonical arithmetic.
K = retarget([pair, select, features], numba.njit(nogil=True, fastmath=False, error_model="numpy"))
# The same functions with reassociation, for estimates only (grouped_l2 on tv's
# centred features): vectorized, within the estimate bound whatever the order.
KF = retarget([pair], numba.njit(nogil=True, fastmath=_PAIR_FASTMATH))
# numba cannot look names up in a namespace object: bind the ones used here.
kth_smallest = K.kth_smallest
count_below = K.count_below
_sq_pair = K.sq_pair
_wsq_pair = K.wsq_pair
_tv_index = K.tv_index  # the layout the device featurize shares (kernels/features.py)
sq_interval = kernel(fastmath=False)(mixed_precision.sq_interval)  # the one bound, compiled for the CPU

# The cancellation guard of the GEMM form: relative rounding of the float64
# product is ~1e-16 * sqrt(d) * (|a|^2 + |b|^2); recomputing every pair with
# d < 1e-6 (|a|^2 + |b|^2) keeps the relative error of each result below ~1e-8.
SQ_GUARD = 1e-6

# Generic drivers: plain templates that call the reduction's pair function by
# the global name ``pair_fn``; generic_drivers binds it per reduction (jit.specialize),
# so every driver is a cacheable plain function, not a closure.


def _pairwise(A, B, arg, out):
    for i in prange(A.shape[0]):
        for j in range(B.shape[0]):
            out[i, j] = pair_fn(A, i, B, j, arg)  # noqa: F821 (bound by jit.specialize)


def _fused_tile(F, i0, i1, k, bound, arg, buf, med):
    n = F.shape[0]
    for r in prange(i1 - i0):
        i = i0 + r
        # Counting pass, no stores: the row can only win if at least k of its
        # distances are strictly below the best median so far. Checked per
        # block so hopeless rows stop early.
        below = 0
        j0 = 0
        while j0 < n and below + (n - j0) >= k:
            j1 = min(n, j0 + 512)
            for j in range(j0, j1):
                if pair_fn(F, i, F, j, arg) < bound:  # noqa: F821
                    below += 1
            j0 = j1
        if below >= k:
            for j in range(n):
                buf[r, j] = pair_fn(F, i, F, j, arg)  # noqa: F821
            med[r] = kth_smallest(buf[r], k)
        else:
            med[r] = np.inf


def _rows_block(F, V, out, j0, j1, diag, arg):
    # out[r, j] = d(V[r], F[j]) for j in [j0, j1); with diag, out[0, j] = d(V[j], F[j]).
    for j in range(j0, j1):
        r0 = j if diag else 0
        r1 = j + 1 if diag else V.shape[0]
        for r in range(r0, r1):
            out[0 if diag else r, j] = pair_fn(F, j, V, r, arg)  # noqa: F821


_GENERIC = {}


def generic_drivers(reduction):
    """The (pairwise, fused_tile, rows_block) drivers for one pair function (built once, compiled lazily).

    Canonical reductions take the strict pair functions (:data:`K`); the
    estimate-only ``grouped_l2`` the reassociated ones (:data:`KF`).
    """
    R = reductions.get(reduction)
    if R not in _GENERIC:
        fast = R.estimate_only
        pair_fn = getattr(KF if fast else K, R.pair)
        suffix = R.name + ("_fast" if fast else "")
        _GENERIC[R] = (
            specialize(_pairwise, suffix, {"parallel": True, "fastmath": False}, pair_fn=pair_fn),
            specialize(_fused_tile, suffix, {"parallel": True, "fastmath": False}, pair_fn=pair_fn),
            specialize(_rows_block, suffix, {"fastmath": False}, pair_fn=pair_fn),
        )
    return _GENERIC[R]


@kernel(parallel=True)
def tile_select(D, k, bound, med):
    """Lower median of each row of ``D`` if it is ``< bound``, else inf (pruned)."""
    for r in prange(D.shape[0]):
        row = D[r]
        if count_below(row, bound) >= k:
            med[r] = kth_smallest(row, k)
        else:
            med[r] = np.inf


_box_pair = K.box_pair
# The counting test below may only over-count, never under-count, against the canonical distance
# (cs_fast.kernels.pair.box_value). It reads U - I as (A + B - I) - I in the estimate's own rounding:
# within 16.1 u U of the exact U - I (u = 2**-53; A, B, I with three roundings each, U <= A + B <= 2 U),
# and the canonical distance is within 12.1 u d of d = (U - I) / U. So d_canonical < t implies
# U - I < (t (1 + 12.1 u) + 16.1 u) U, which the test admits with loose = t (1 + 1e-12) + 1e-14
# (more than 30x the 25.3 u t + 16.2 u it needs, reassociation and contraction included).
_COUNT_SLACK = 1.0 + 1e-12
_COUNT_TINY = 1e-14


@kernel(nogil=True, inline="always")
def count_loose(t):
    """The relaxed threshold of the division-free box count for threshold ``t`` (see ``_COUNT_SLACK``)."""
    return t * _COUNT_SLACK + _COUNT_TINY


# box_value inlined where numba compiles the caller (a parallel kernel too), so the row loops vectorize
# (a call to the separately compiled K.box_value from a prange body is not inlined: ~5x slower).
_box_value = numba.njit(inline="always", fastmath=False, error_model="numpy")(pair.box_value)


@kernel(nogil=True, error_model="numpy", inline="always")
def _box_to(ax1, ay1, ax2, ay2, x1, y1, x2, y2, out):
    # d(a, box j) for every j of the columns x1, y1, x2, y2: box_value's arithmetic, inlined (numba
    # compiles it with the caller's options: the callers take numpy's error model, so no zero-division
    # check branches the loop, which then vectorizes).
    for j in range(out.shape[0]):
        out[j] = _box_value(ax1, ay1, ax2, ay2, x1[j], y1[j], x2[j], y2[j])


@kernel(nogil=True, fastmath=False, error_model="numpy")
def box_row(FT, i, out):
    """Jaccard distances of box ``i`` to every box, into ``out`` (``FT``: boxes transposed, (4, n)).

    :func:`cs_fast.kernels.pair.box_value` on every pair, vectorized. No
    fastmath: strict IEEE arithmetic gives every caller -- the brute-force
    exact pass, the pruned center's full rows, ``to_center`` and ``cdist``
    (:func:`box_rows_to`) -- the same floats, vectorized or not
    (tests/test_exact_fuzz.py).
    """
    _box_to(FT[0, i], FT[1, i], FT[2, i], FT[3, i], FT[0], FT[1], FT[2], FT[3], out)


@kernel(parallel=True, fastmath=False, error_model="numpy")
def box_rows_to(A, FT, out):
    """``out[r, j] = d(A[r], box j)`` with ``FT`` the other boxes transposed (4, n); ``out`` float64 or float32."""
    for r in prange(A.shape[0]):
        _box_to(A[r, 0], A[r, 1], A[r, 2], A[r, 3], FT[0], FT[1], FT[2], FT[3], out[r])


@kernel(fastmath=FASTMATH, inline="always")
def box_below(ax1, ay1, ax2, ay2, area, bx1, by1, bx2, by2, loose, one_below, zero_below):
    """The counting test of :func:`box_fused_tile` for one pair: may ``d(a, b)`` be below the row's threshold?

    Overlapping pairs: ``union - inter < loose * union`` (no division; ``loose = count_loose(t)``
    carries the slack that makes it a superset of the canonical ``d < t``). Disjoint pairs are
    exactly 1, or 0 for two empty boxes: tested exactly through ``one_below`` (``1 < t``) and
    ``zero_below`` (``0 < t``). Branch-free, so the callers' loops vectorize.
    """
    iw = max(min(ax2, bx2) - max(ax1, bx1), 0.0)
    ih = max(min(ay2, by2) - max(ay1, by1), 0.0)
    inter = iw * ih
    union = area + (bx2 - bx1) * (by2 - by1) - inter
    disjoint = inter <= 0.0
    return ((~disjoint) & (union - inter < loose * union)) | (
        disjoint & (((union > 0.0) & one_below) | ((union <= 0.0) & zero_below))
    )


@kernel(parallel=True, fastmath=FASTMATH)
def box_fused_tile(F, FT, rows, k, best, best_index, buf, med, evals):
    """:func:`generic_drivers`'s fused tile for boxes, with a vectorized counting pass.

    Row ``r`` of the tile is box ``rows[r]``. ``FT`` is ``F`` transposed
    (4, n), so the counting loop reads four contiguous columns. A row counts
    its distances below its threshold: ``best``, or for rows before
    ``best_index`` the next float above it (an equal median with a smaller
    index still wins). Overlapping pairs test ``union - inter < t * union``
    instead of ``1 - inter / union < t`` (no division), with a relative slack
    so rounding can only admit extra rows to the exact pass, never drop a row
    that could win. Disjoint pairs are exactly 1 (0 for two empty boxes) and
    are tested exactly: with the slack, a best median of 1 (mostly disjoint
    boxes) would admit every saturated pair and send every row through the
    exact pass. ``evals[r]`` receives the distances row ``r`` evaluated. The
    result stays exactly the brute-force one.
    """
    n = F.shape[0]
    x1 = FT[0]
    y1 = FT[1]
    x2 = FT[2]
    y2 = FT[3]
    for r in prange(rows.shape[0]):
        i = rows[r]
        t = best if i > best_index else np.nextafter(best, np.inf)
        loose = count_loose(t)
        zero_below = 0.0 < t  # d = 0: two empty boxes
        one_below = 1.0 < t  # d = 1: disjoint boxes, one of them possibly empty
        ax1 = x1[i]
        ay1 = y1[i]
        ax2 = x2[i]
        ay2 = y2[i]
        area = (ax2 - ax1) * (ay2 - ay1)
        below = 0
        j0 = 0
        # Vectorized blocks; stop once the row can no longer reach k.
        while j0 < n and below + (n - j0) >= k:
            j1 = min(n, j0 + 2048)
            # Slices indexed from 0 keep the loads contiguous (see _l1_chunk).
            bx1 = x1[j0:j1]
            by1 = y1[j0:j1]
            bx2 = x2[j0:j1]
            by2 = y2[j0:j1]
            for j in range(j1 - j0):
                below += box_below(ax1, ay1, ax2, ay2, area, bx1[j], by1[j], bx2[j], by2[j], loose, one_below,
                                   zero_below)
            j0 = j1
        evals[r] = j0
        if below >= k:
            box_row(FT, i, buf[r])
            evals[r] += n
            med[r] = kth_smallest(buf[r], k)
        else:
            med[r] = np.inf


L1_CHUNK = 512  # feature chunk: the 2 + 4 row chunks stay in L1, a column block of all rows in L2/L3


@kernel(fastmath=FASTMATH, inline="always")
def _l1_slices(a, b, zero):
    s = zero
    for k in range(a.shape[0]):
        s += abs(a[k] - b[k])
    return s


@kernel(parallel=True, fastmath=FASTMATH)
def _l1_chunk(A, B, k0, k1, acc):
    # Row slices indexed from 0: numba then knows the index is non-negative,
    # drops its negative-index wraparound, and LLVM emits contiguous vector loads.
    na = A.shape[0]
    nb = B.shape[0]
    zero = A[0, 0] - A[0, 0]  # the storage dtype's zero: chunk sums vectorize in it
    nblk = (na + 1) // 2
    jmain = nb - nb % 4
    for blk in prange(nblk):
        i0 = blk * 2
        if i0 + 2 <= na:
            a0 = A[i0, k0:k1]
            a1 = A[i0 + 1, k0:k1]
            for j in range(0, jmain, 4):
                b0 = B[j, k0:k1]
                b1 = B[j + 1, k0:k1]
                b2 = B[j + 2, k0:k1]
                b3 = B[j + 3, k0:k1]
                s00 = zero
                s01 = zero
                s02 = zero
                s03 = zero
                s10 = zero
                s11 = zero
                s12 = zero
                s13 = zero
                for k in range(k1 - k0):
                    u = a0[k]
                    w = a1[k]
                    v = b0[k]
                    s00 += abs(u - v)
                    s10 += abs(w - v)
                    v = b1[k]
                    s01 += abs(u - v)
                    s11 += abs(w - v)
                    v = b2[k]
                    s02 += abs(u - v)
                    s12 += abs(w - v)
                    v = b3[k]
                    s03 += abs(u - v)
                    s13 += abs(w - v)
                acc[i0, j] += s00
                acc[i0, j + 1] += s01
                acc[i0, j + 2] += s02
                acc[i0, j + 3] += s03
                acc[i0 + 1, j] += s10
                acc[i0 + 1, j + 1] += s11
                acc[i0 + 1, j + 2] += s12
                acc[i0 + 1, j + 3] += s13
            for j in range(jmain, nb):
                acc[i0, j] += _l1_slices(a0, B[j, k0:k1], zero)
                acc[i0 + 1, j] += _l1_slices(a1, B[j, k0:k1], zero)
        else:
            for i in range(i0, na):
                for j in range(nb):
                    acc[i, j] += _l1_slices(A[i, k0:k1], B[j, k0:k1], zero)


def l1_pairwise(A, B, acc):
    """Add ``sum_k |A[i, k] - B[j, k]|`` to the float64 matrix ``acc`` (zeroed by the caller)."""
    d = A.shape[1]
    if A.shape[0] == 0 or B.shape[0] == 0:
        return acc
    for k0 in range(0, d, L1_CHUNK):
        _l1_chunk(A, B, k0, min(k0 + L1_CHUNK, d), acc)
    return acc


@kernel(fastmath=FASTMATH)
def l1_row_estimate(F, i, out):
    """``out[j]`` = the l1 estimate of rows ``i`` and ``j`` as :func:`l1_pairwise` forms it, one row at a time.

    The same error structure (storage-dtype chunk sums of at most ``L1_CHUNK``
    terms, added in float64), so the same bound, without pairing the row with
    a padding copy: the refinement of :mod:`cs_fast.kernels.cpu.exact` reads one
    candidate's estimates.
    """
    d = F.shape[1]
    zero = F[0, 0] - F[0, 0]
    for j in range(F.shape[0]):
        acc = 0.0
        for k0 in range(0, d, L1_CHUNK):
            k1 = min(d, k0 + L1_CHUNK)
            acc += _l1_slices(F[i, k0:k1], F[j, k0:k1], zero)
        out[j] = acc
    return out


def l1_rows(F, rows, out):
    """float64 l1 distances of the rows ``rows`` of ``F`` to every row, into ``out[:len(rows)]``.

    :func:`l1_pairwise` blocks rows in pairs and sends an odd last row down
    another code path, which can round differently; padding with a copy of
    the last row makes every row sum the same way, so brute force and the
    pruned center (:mod:`cs_fast.kernels.cpu.prune`) get the same floats whatever
    their tiles.
    """
    m = rows.shape[0]
    G = F[rows] if m % 2 == 0 else F[np.append(rows, rows[-1])]
    acc = np.zeros((G.shape[0], F.shape[0]))
    l1_pairwise(G, F, acc)
    out[:m] = acc[:m]
    return out[:m]


@kernel(parallel=True)
def _sq_finish(A, B, na2, nb2, G, guard, take_sqrt):
    for i in prange(G.shape[0]):
        for j in range(G.shape[1]):
            scale = na2[i] + nb2[j]
            v = scale - 2.0 * G[i, j]
            if v < guard * scale:
                v = _sq_pair(A, i, B, j, 0)
            if v < 0.0:
                v = 0.0
            G[i, j] = math.sqrt(v) if take_sqrt else v




# features.tv_norms (the device's too), reassociated: bounds, so any summation order. Not inlined by
# numba: an inlined body takes its caller's options, and tv_estimate's are strict.
_tv_norms = numba.njit(fastmath=_PAIR_FASTMATH)(features.tv_norms)


@kernel(parallel=True, fastmath=False)  # the centred features' arithmetic, as derived and as the device's
def tv_estimate(X, centre, grouped, out, norms):
    """Write the TV neighbour differences of ``X - centre`` into ``out``; per row, the norms the estimate bound needs.

    ``X`` is (n, C, H, W) images, ``centre`` a float64 (C, H, W) image (one
    of the samples' own values, so that ``X - centre`` is exact in float64
    for float32 inputs). ``out`` is (n, C * P) with P = (H - 1) W + H (W - 1):
    for each channel the vertical differences ``y[h + 1, w] - y[h, w]`` of
    ``y = X - centre`` in row-major (h, w) order, then the horizontal ones
    ``y[h, w + 1] - y[h, w]``, computed in float64 and stored in ``out``'s
    dtype. With ``grouped`` the channels of one position are adjacent instead
    (``p * C + c``), as the channel-l2 reduction reads them; the column layout
    is :func:`cs_fast.kernels.features.tv_index`, the value
    :func:`cs_fast.kernels.features.tv_centred_difference`, both shared with
    the device. ``norms`` (n, 2), or (0, 2) for none: ``(sum_p |out[i, p]|,
    sum_k |y_k|)`` in float64. One pass over the images, in parallel.
    """
    n, C, H, W = X.shape
    P = (H - 1) * W + H * (W - 1)
    nv = (H - 1) * W
    flat = X.reshape(n, C * H * W)
    centre_flat = centre.reshape(C * H * W)
    for i in prange(n):
        for c in range(C):
            for h in range(H - 1):
                base = c * P + h * W  # channel-major: a contiguous run of W columns
                for w in range(W):
                    idx = _tv_index(h * W + w, c, C, P, grouped) if grouped else base + w
                    out[i, idx] = (np.float64(X[i, c, h + 1, w]) - centre[c, h + 1, w]) - (
                        np.float64(X[i, c, h, w]) - centre[c, h, w])
            for h in range(H):
                base = c * P + nv + h * (W - 1)
                for w in range(W - 1):
                    idx = _tv_index(nv + h * (W - 1) + w, c, C, P, grouped) if grouped else base + w
                    out[i, idx] = (np.float64(X[i, c, h, w + 1]) - centre[c, h, w + 1]) - (
                        np.float64(X[i, c, h, w]) - centre[c, h, w])
        if norms.shape[0]:
            norms[i, 0], norms[i, 1] = _tv_norms(out, flat, centre_flat, i)


def centre(F, shift=None):
    """float64 copy of ``F`` minus ``shift`` (its column mean by default), and its row norms².

    Distances are translation invariant; centring shrinks ``|a|^2`` and
    ``|b|^2`` to the spread of the samples, which is where the cancellation of
    the GEMM form comes from.
    """
    F64 = F.astype(np.float64)
    F64 -= F64.mean(axis=0) if shift is None else shift
    return F64, np.einsum("ij,ij->i", F64, F64)


def sq_pairwise(A, B, take_sqrt):
    """Squared (``take_sqrt``: plain) Euclidean distances of centred float64 rows.

    ``A`` and ``B`` are ``(array, row_norms²)`` pairs from :func:`centre` with
    the same shift. Returns a new float64 matrix.
    """
    (A64, na2), (B64, nb2) = A, B
    G = A64 @ B64.T
    _sq_finish(A64, B64, na2, nb2, G, SQ_GUARD, take_sqrt)
    return G


# Below this many element operations the sq/l2 helpers run on one thread: a
# parallel launch costs more than it saves there, most of all on a busy machine
# and right after BLAS, whose worker threads keep spinning for a while.
SERIAL_WORK = 1 << 24
_ROW_BLOCK = 64  # rows of F per parallel task


# The canonical row kernels of the long sums. Each distance is the one loop of
# its reduction's block kernel, whichever driver calls it (one thread or parallel
# blocks, to_center, cdist, paired, a refinement): the loop is compiled once,
# with reassociation so that LLVM vectorizes it, and its order is then fixed
# (tests/test_exact_fuzz.py holds every front door to the same bits). The
# block kernels are _rows_block bound to the inline sums below (tv has its own:
# it needs scratch rows); diag: out[0, j] = d(V[j], F[j]) (paired) instead of
# out[r, j] = d(V[r], F[j]).


# The pair functions' own loops, reassociated and inlined into the block template: one definition.
_sq_sum, _wsq_sum, _l1_sum = (numba.njit(fastmath=_PAIR_FASTMATH, inline="always")(f)
                              for f in (pair.sq_pair, pair.wsq_pair, pair.l1_pair))


@kernel(fastmath=_PAIR_FASTMATH)
def _tv_rows_block(F, V, out, j0, j1, diag, arg):
    # TV(V[r] - F[j]) of flattened (C, H, W) images, arg = (H, W, grouped, hmask): the difference
    # of the two samples first (e, exact in float64 for float32 pixels), then per channel the
    # vertical neighbour differences and the horizontal ones (one loop over the channel, the row
    # ends masked out: hmask[q] is False where q is the last pixel of a row); channel-l1, or with
    # grouped the l2 norm over channels per position (s: the position's sum of squares).
    H, W, grouped, hmask = arg
    m = V.shape[0]
    d = F.shape[1]
    hw = H * W
    nv = hw - W
    C = d // hw
    e = np.empty(d)
    s = np.empty(hw)
    for j in range(j0, j1):
        r0 = j if diag else 0
        r1 = j + 1 if diag else m
        for r in range(r0, r1):
            for k in range(d):
                e[k] = np.float64(F[j, k]) - np.float64(V[r, k])
            acc = 0.0
            if grouped:
                for p in range(nv):
                    s[p] = 0.0
                for c in range(C):
                    ec = e[c * hw:(c + 1) * hw]
                    for p in range(nv):
                        t = ec[p + W] - ec[p]
                        s[p] += t * t
                for p in range(nv):
                    acc += math.sqrt(s[p])
                for q in range(hw - 1):
                    s[q] = 0.0
                for c in range(C):
                    ec = e[c * hw:(c + 1) * hw]
                    for q in range(hw - 1):
                        t = ec[q + 1] - ec[q]
                        s[q] += t * t
                for q in range(hw - 1):
                    acc += math.sqrt(s[q]) if hmask[q] else 0.0
            else:
                for c in range(C):
                    ec = e[c * hw:(c + 1) * hw]
                    for p in range(nv):
                        acc += abs(ec[p + W] - ec[p])
                    for q in range(hw - 1):
                        acc += abs(ec[q + 1] - ec[q]) if hmask[q] else 0.0
            out[0 if diag else r, j] = acc


# Below this many element operations the row kernels run on one thread: a
# parallel launch costs more than it saves there, most of all on a busy machine
# and right after BLAS, whose worker threads keep spinning for a while.
SERIAL_WORK = 1 << 24
_ROW_BLOCK = 64  # rows of F per parallel task


def _rows_parallel(F, V, out, block, diag, arg):
    n = F.shape[0]
    for b in prange((n + block - 1) // block):
        rows_fn(F, V, out, b * block, min(n, (b + 1) * block), diag, arg)  # noqa: F821 (bound by specialize)


_ROW_DRIVERS = {}


def row_kernels(reduction):
    """``(block, parallel)`` row kernels of a reduction's canonical distances (built once, compiled lazily).

    ``block(F, V, out, j0, j1, diag, arg)`` computes rows ``j0 .. j1`` of ``F``
    on one thread; ``parallel(F, V, out, block_rows, diag, arg)`` the same in
    parallel blocks of rows, calling ``block``: the same bits either way.
    """
    R = reductions.get(reduction).squared  # a root (l2) runs its square's kernels; the root is taken after
    if R not in _ROW_DRIVERS:
        sums = {reductions.SQ: _sq_sum, reductions.WSQ: _wsq_sum, reductions.L1: _l1_sum}
        if R.image:
            block = _tv_rows_block  # tv and tv2: one kernel, the channel norm is its argument
        elif R in sums:
            block = specialize(_rows_block, R.name + "_canonical", {"fastmath": _PAIR_FASTMATH},
                               pair_fn=sums[R])
        else:
            block = generic_drivers(R)[2]
        parallel = specialize(_rows_parallel, R.name, {"parallel": True}, rows_fn=block)
        _ROW_DRIVERS[R] = (block, parallel)
    return _ROW_DRIVERS[R]


def row_mask(H, W):
    """hmask of :func:`_tv_rows_block`: False at the last pixel of each image row."""
    mask = np.ones(max(0, H * W - 1), dtype=np.bool_)
    mask[W - 1::W] = False
    return mask


def sq_rows(F, V, out, diag=False):
    """``out[r, j] = sum_k (F[j, k] - V[r, k])**2`` summed directly in float64: the canonical ``sq``.

    Every entry is computed by one compiled loop (one thread per entry, one
    fixed vectorized order), on one thread or in parallel blocks of rows: a
    distance has the same bits whoever asks -- ``to_center`` (``V`` the
    center), ``cdist``, ``paired`` (``diag``: ``out[0, j] = d(V[j], F[j])``) or
    the refinement of :func:`sq_min_median` (``V`` the candidate rows) -- and
    however many threads run (tests/test_mixed_precision.py holds the drivers
    equal).
    """
    return rows("sq", F, V, 0, out, diag)


def rows(reduction, F, V, arg, out, diag=False):
    """The canonical float64 distances ``out[r, j] = d(V[r], F[j])`` (``diag``: ``out[0, j] = d(V[j], F[j])``).

    The one arithmetic per pair of every CPU front door and of every exact
    median: the long sums (``sq``, ``l2``, ``wsq``, ``l1``, ``tv``, ``tv2``)
    by their row kernels (:func:`row_kernels`), boxes by :func:`box_rows_to`
    (``box_value`` vectorized), masks and angles by the strict pair functions
    of :mod:`cs_fast.kernels.pair`. Distances are symmetric bit for bit
    (``d(a, b)`` and ``d(b, a)`` round alike), so the order of the two
    arguments never matters. ``arg``: the reduction's parameter (``tv``/``tv2``:
    the packed image shape; ``wsq``: the float64 weights).
    """
    R = reductions.get(reduction)
    if R.box and not diag:
        box_rows_to(V, np.ascontiguousarray(F.T), out)
        return out
    block_rows = _ROW_BLOCK
    if R.image:
        H, W = K.tv_shape(arg)
        arg, block_rows = (H, W, R is reductions.TV2, row_mask(H, W)), 8
    block, parallel = row_kernels(R)
    n = F.shape[0]
    if n * (1 if diag else V.shape[0]) * max(1, F.shape[1]) < SERIAL_WORK:
        block(F, V, out, 0, n, diag, arg)
    elif n:
        parallel(F, V, out, block_rows, diag, arg)
    if R.root:
        np.sqrt(out, out=out)
    return out


@kernel(fastmath=_PAIR_FASTMATH)
def centre32_block(F, shift, X, na, i0, i1):
    # X = fl32(F - shift), na = float64 norms² of X's rows (any summation order: the bound allows it).
    # ``shift`` has F's dtype: float32 rows subtract in float32 (one rounding, u32, and
    # translating every row by the same float32 vector changes no distance).
    for i in range(i0, i1):
        acc = 0.0
        for k in range(F.shape[1]):
            x = np.float32(F[i, k] - shift[k])
            X[i, k] = x
            y = np.float64(x)
            acc += y * y
        na[i] = acc


@kernel(fastmath=_PAIR_FASTMATH)
def _centre32w_block(F, shift, r, X, na, i0, i1):
    # Weighted rows: X = fl32(fl64(F - shift) * r), r = sqrt(w) in float64 (three roundings:
    # mixed_precision.sq_coefficients(weighted=True)), after the samples are centred.
    for i in range(i0, i1):
        acc = 0.0
        for k in range(F.shape[1]):
            x = np.float32((np.float64(F[i, k]) - np.float64(shift[k])) * r[k])
            X[i, k] = x
            y = np.float64(x)
            acc += y * y
        na[i] = acc


@kernel(parallel=True)
def centre32_parallel(F, shift, X, na, block):
    n = F.shape[0]
    for b in prange((n + block - 1) // block):
        centre32_block(F, shift, X, na, b * block, min(n, (b + 1) * block))


@kernel(parallel=True)
def _centre32w_parallel(F, shift, r, X, na, block):
    n = F.shape[0]
    for b in prange((n + block - 1) // block):
        _centre32w_block(F, shift, r, X, na, b * block, min(n, (b + 1) * block))


def centre32(F, shift, X, na, r=None):
    """``X = fl32(F - shift)`` (``r``: ``fl32((F - shift) r)``, weighted) and ``na[i] = sum_k X[i, k]**2`` in float64.

    The mixed GEMM's inputs.
    """
    if r is not None:
        if F.size < SERIAL_WORK:
            _centre32w_block(F, shift, r, X, na, 0, F.shape[0])
        else:
            _centre32w_parallel(F, shift, r, X, na, _ROW_BLOCK)
    elif F.size < SERIAL_WORK:
        centre32_block(F, shift, X, na, 0, F.shape[0])
    else:
        centre32_parallel(F, shift, X, na, _ROW_BLOCK)


def centred32(F, shift, r=None):
    shift = np.ascontiguousarray(shift, dtype=F.dtype)  # float32 data: a float32 shift (see centre32_block)
    X = np.empty(F.shape, dtype=np.float32)
    na = np.empty(F.shape[0])
    if F.shape[0]:
        centre32(F, shift, X, na, r)
    return X, na


@kernel()
def accept_thresholds(aA, bmax, coef, rtol, T):
    # T[i]: an estimate dt >= T[i] is kept for every column of row i. With the
    # largest column norm the interval only widens, and its relative width
    # hi / lo falls as dt grows (d/dx log of (sqrt(x + E) + eps) is smaller
    # than that of (sqrt(x - E) - eps)), so the test at T[i] holds above it.
    # The closed form is a start; the bound itself decides (doubling until it
    # holds, then bisecting down), with a 2**-30 margin for the rounding of the check.
    c, c64, rho, g, abs_sq, abs_eps = coef
    ok = rtol * (1.0 - 2.0 ** -30)
    for i in range(aA.shape[0]):
        ai = aA[i]
        e = 2.0 * c * ai * bmax + c64 * (ai * ai + bmax * bmax) + abs_sq
        eps = rho * (ai + bmax) + abs_eps
        r = 0.5 * rtol
        y = (4.0 * eps + math.sqrt(16.0 * eps * eps + 8.0 * r * e)) / (2.0 * r)
        x = max(y * y, 2.0 * e, 1e-300)
        kept = False
        while not kept and x < 1e300:
            lo, hi = sq_interval(x, ai, bmax, c, c64, rho, g, abs_sq, abs_eps)
            kept = lo > 0.0 and hi - lo <= ok * lo
            if not kept:
                x *= 2.0
        if not kept:
            T[i] = np.inf
            continue
        # Bisect down towards the smallest kept estimate; x always stays a kept one.
        low = 0.0
        for _ in range(24):
            mid = 0.5 * (low + x)
            lo, hi = sq_interval(mid, ai, bmax, c, c64, rho, g, abs_sq, abs_eps)
            if lo > 0.0 and hi - lo <= ok * lo:
                x = mid
            else:
                low = mid
        T[i] = x


@kernel()
def _sq_estimates_rows(G, naA, naB, T, flags, i0, i1):
    # G[i, j] <- fl32((na_i + na_j) - 2 G[i, j]) (the bound's float32 estimates) and,
    # per row, how many fall below the row's keep threshold. Branch-free: vectorizes.
    for i in range(i0, i1):
        nai = naA[i]
        Ti = T[i]
        below = 0
        for j in range(G.shape[1]):
            v = np.float32((nai + naB[j]) - 2.0 * np.float64(G[i, j]))
            G[i, j] = v
            below += np.float64(v) < Ti
        flags[i] = below


@kernel()
def sq_fix_rows(A, B, G, aA, aB, T, flags, coef, rtol, i0, i1, w=None):
    # Entries below their row's threshold: their own interval (column norm, not
    # the largest), and float64 where even that is wider than rtol (w: weighted rows).
    c, c64, rho, g, abs_sq, abs_eps = coef
    for i in range(i0, i1):
        if flags[i] == 0:
            continue
        Ti = T[i]
        for j in range(G.shape[1]):
            dt = np.float64(G[i, j])
            if dt < Ti:
                lo, hi = sq_interval(dt, aA[i], aB[j], c, c64, rho, g, abs_sq, abs_eps)
                if not hi - lo <= rtol * lo:
                    G[i, j] = _sq_pair(A, i, B, j, 0) if w is None else _wsq_pair(A, i, B, j, w)
            # kept: the estimate and the float64 value lie in [lo, hi]: |dt - D64| <= rtol * D64


@kernel(parallel=True)
def _sq_finish_parallel(A, B, G, naA, naB, aA, aB, T, flags, coef, rtol, block):
    n = G.shape[0]
    for b in prange((n + block - 1) // block):
        i0 = b * block
        i1 = min(n, i0 + block)
        _sq_estimates_rows(G, naA, naB, T, flags, i0, i1)
        sq_fix_rows(A, B, G, aA, aB, T, flags, coef, rtol, i0, i1)


def same_rows(A, B):
    return (A.shape == B.shape and A.strides == B.strides
            and A.__array_interface__["data"][0] == B.__array_interface__["data"][0])


def sq_pairwise_mixed(A, B, take_sqrt, rtol=mixed_precision.CDIST_RTOL):
    """float32 (na, nb) ``sq``/``l2`` distances, each within relative ``rtol`` of the float64 one.

    One float32 BLAS GEMM on rows centred on ``A``'s column mean, float32
    estimates ``na_i + na_j - 2 G_ij``, then
    :func:`cs_fast.kernels.mixed_precision.sq_interval`: an estimate above
    its row's threshold (:func:`accept_thresholds`) is kept; below it, its
    own interval decides, and an entry whose interval is wider than ``rtol``
    times its lower end is recomputed directly in float64 (``sq_pair``).
    ``l2`` is the float32 square root of that (one more float32 rounding).
    Returns None when the centred norms are too large for a float32 GEMM (the
    caller then uses float64).
    """
    # Any shift is exact (distances are translation invariant): the column mean in A's own dtype.
    shift = A.mean(axis=0) if A.shape[0] else np.zeros(A.shape[1], dtype=A.dtype)
    XA, naA = centred32(A, shift)
    if same_rows(A, B):  # cdist(X, X): X @ X.T, which BLAS computes as a symmetric product (half the work)
        XB, naB = XA, naA
    else:
        XB, naB = centred32(B, shift)
    if not (max(naA.max(initial=0.0), naB.max(initial=0.0)) < mixed_precision.MAX_NORM2):
        return None
    d = A.shape[1]
    coef = mixed_precision.sq_coefficients(d, estimate_roundoff=mixed_precision.U32)  # float32 estimates
    G = XA @ XB.T  # float32 BLAS; (na, nb) and C-contiguous
    aA, aB = mixed_precision.norm_upper(naA, d), mixed_precision.norm_upper(naB, d)
    T = np.empty(len(aA))
    accept_thresholds(aA, float(aB.max(initial=0.0)), coef, float(rtol), T)
    flags = np.empty(len(aA), dtype=np.int64)
    if G.size * 8 < SERIAL_WORK:  # right after BLAS (its threads still spin) one thread is faster here
        _sq_estimates_rows(G, naA, naB, T, flags, 0, G.shape[0])
        sq_fix_rows(A, B, G, aA, aB, T, flags, coef, float(rtol), 0, G.shape[0])
    else:
        _sq_finish_parallel(A, B, G, naA, naB, aA, aB, T, flags, coef, float(rtol), 16)
    if take_sqrt:
        np.sqrt(G, out=G)
    return G


@kernel()
def _sq_estimates32(G, na32, i0):
    # In place, float32: G[r, j] <- (na_i + na_j) - 2 G[r, j] (G + G is exact).
    # float32 estimates select at the float32 peers' speed; the bound's
    # estimate_roundoff = U32 accounts for forming them in float32. Serial:
    # a fraction of a millisecond per tile, less than a parallel launch costs
    # right after BLAS's threads.
    for r in range(G.shape[0]):
        ni = na32[i0 + r]
        for j in range(G.shape[1]):
            g = G[r, j]
            G[r, j] = (ni + na32[j]) - (g + g)


@kernel()
def _median_intervals(m, a, i0, amax, coef, lo, hi):
    # Per row, the k-th smallest estimate widened with the largest norm for
    # a_j (both ends of the interval grow with it, and are non-decreasing in
    # the estimate): an interval for the row's canonical lower median.
    c, c64, rho, g, abs_sq, abs_eps = coef
    for r in range(m.shape[0]):
        lo[i0 + r], hi[i0 + r] = sq_interval(np.float64(m[r]), a[i0 + r], amax, c, c64, rho, g, abs_sq, abs_eps)


def sq_min_median(F, take_sqrt, tile, w=None):
    """:func:`min_median` for ``sq``/``l2``: float32 GEMM, bound, float64 refinement.

    Every row's lower median gets an interval from a float32 GEMM tile, a
    float32 selection and :func:`cs_fast.kernels.mixed_precision.sq_interval`;
    ``U`` is the smallest upper end. A row whose lower end exceeds ``U`` has
    a median strictly above the best and cannot win; the others (the
    *candidates*) get their canonical float64 rows from :func:`sq_rows` and an
    exact selection, in order of their lower ends until those pass the best.
    The result is the brute force over :func:`sq_rows`'s distances, bit for
    bit (ties: the smallest index). Returns ``(index, radius, candidates)``.
    Extra memory: the float32 centred copy and one float32 ``tile x n`` tile.
    ``w``: float64 weights (``wsq``: the GEMM reads the centred rows scaled by
    ``sqrt(w)``, the refinement the canonical weighted rows).
    """
    n, d = F.shape
    k = (n + 1) // 2
    weighted = w is not None
    r = np.sqrt(w) if weighted else None
    X, na = centred32(F, F.mean(axis=0), r)  # any shift is exact; the column mean in F's dtype
    if na.max() < mixed_precision.MAX_NORM2:
        coef = mixed_precision.sq_coefficients(d, estimate_roundoff=mixed_precision.U32, weighted=weighted)
        a = mixed_precision.norm_upper(na, d)
        amax = float(a.max())
        na32 = na.astype(np.float32)
        lo = np.empty(n)
        hi = np.empty(n)
        tile = max(1, min(n, tile))
        for i0 in range(0, n, tile):
            i1 = min(n, i0 + tile)
            # float32 BLAS; one tile of all rows is X @ X.T, a symmetric product (syrk: half the work)
            G = X @ X.T if (i0 == 0 and i1 == n) else X[i0:i1] @ X.T
            _sq_estimates32(G, na32, i0)
            G.partition(k - 1, axis=1)
            _median_intervals(G[:, k - 1], a, i0, amax, coef, lo, hi)
        if take_sqrt:
            # Compare where the answer lives: two sq medians may share one sqrt.
            lo, hi = np.sqrt(lo), np.sqrt(hi)
        order = np.argsort(lo, kind="stable")
        order = order[: int(np.searchsorted(lo[order], hi.min(), side="right"))]
    else:  # norms too large for a float32 GEMM: every row exactly
        lo = np.zeros(n)
        order = np.arange(n)
    best, best_index = np.inf, -1
    step = max(1, numba.get_num_threads())
    for s in range(0, len(order), step):
        take = order[s : s + step]
        take = take[lo[take] <= best]  # sorted by lower end: past the best, no row can win
        if take.size == 0:
            break
        D = np.empty((take.size, n))
        rows("wsq" if weighted else "sq", F, np.ascontiguousarray(F[take]), w, D)
        for q, i in enumerate(take):
            m = kth_smallest(D[q], k)
            if take_sqrt:
                m = math.sqrt(m)
            if m < best or (m == best and i < best_index):
                best, best_index = m, int(i)
    return best_index, float(best), len(order)


def pairwise(reduction, A, B, arg, out_dtype):
    """Full (na, nb) distance matrix for a reduction, in ``out_dtype``.

    float64 output: the canonical distances of :func:`rows`, bit for bit the
    ones ``to_center`` and ``min_median`` use. float32 output of the long sums
    takes the float32 fast paths, within their stated bounds of the canonical
    distance: ``l1`` the blocked float32 chunk sums (:func:`l1_pairwise`),
    ``sq``/``l2`` the float32 GEMM with its bound (:func:`sq_pairwise_mixed`).
    Everything else is the canonical distance rounded to ``out_dtype``.
    """
    R = reductions.get(reduction)
    if np.dtype(out_dtype) == np.float32:
        if R.chunk_estimates:
            acc = np.zeros((A.shape[0], B.shape[0]))
            return l1_pairwise(A, B, acc).astype(out_dtype, copy=False)
        if R.gemm and A.shape[1]:
            G = sq_pairwise_mixed(A, B, R.root)
            if G is not None:
                return G
    if R.row_kernels or R.chunk_estimates:
        out = np.empty((A.shape[0], B.shape[0]))
        rows(R, B, A, arg, out)
        return out.astype(out_dtype, copy=False)
    # Strict arithmetic rounds alike in every driver: these write whole rows, vectorized where they can.
    out = np.empty((A.shape[0], B.shape[0]), dtype=out_dtype)
    if R.box:
        box_rows_to(A, np.ascontiguousarray(B.T), out)
    else:
        generic_drivers(R)[0](A, B, arg, out)
    return out


def to_center(reduction, F, C, arg):
    """The canonical float64 distances from every row of ``F`` to the single row ``C`` (shape (1, d))."""
    out = np.empty((1, F.shape[0]))
    rows(reduction, F, np.ascontiguousarray(C), arg, out)
    return out[0]


def paired(reduction, A, B, arg):
    """The canonical float64 distances ``d(A[i], B[i])`` of matching rows."""
    out = np.empty((1, A.shape[0]))
    rows(reduction, B, A, arg, out, diag=True)
    return out[0]


def min_median(reduction, F, arg, tile, slack=None, seen=None, stats=None):
    """Index and value of the smallest lower median of the rows of ``D(F, F)``, brute force.

    Rows are processed ``tile`` at a time. A row with fewer than
    ``k = ceil(n / 2)`` distances strictly below ``best`` (the best median so
    far) has median ``>= best`` and cannot replace it (ties keep the smaller
    index, and rows are visited in index order); only rows that pass that
    counting pass run an exact selection. Extra memory is one float64
    ``tile x n`` buffer. ``sq`` and ``l2`` go to :func:`sq_min_median`. The
    distances are the reduction's row kernels: canonical for boxes, masks and
    angles; for ``l1`` and ``grouped_l2`` the fast estimates that
    :mod:`cs_fast.kernels.cpu.exact` refines.

    ``slack`` (a non-decreasing function of the best median, ``slack(m) >=
    m``) turns this into the estimate pass of :mod:`cs_fast.kernels.cpu.exact`:
    a row's exact median is computed whenever it is ``<= slack(best)``
    (instead of ``< best``), and ``seen[i]`` receives every computed median
    (inf for the rows the count settled: their medians exceed ``slack`` of the
    best at that time, which is at least ``slack`` of the final best).
    """
    R = reductions.get(reduction)
    if R.gemm:
        index, radius, _ = sq_min_median(F, R.root, tile)
        return index, radius
    n = F.shape[0]
    k = (n + 1) // 2
    best = np.inf
    best_index = -1
    direct = not R.chunk_estimates  # l1 reads its float32 chunk sums (l1_rows), the rest their pair function
    fused = generic_drivers(R)[1] if direct else None
    if R.box:
        FT = np.ascontiguousarray(F.T)
    # Small first tiles, doubling, give a tight bound early so later tiles prune.
    first = min(n, tile, max(1, numba.get_num_threads()))
    buf = np.empty((min(tile, n), n))
    med = np.empty(min(tile, n))
    evals = np.empty(min(tile, n), np.int64)
    evaluated = recomputed = 0
    start = 0
    size = first
    while start < n:
        stop = min(n, start + size)
        size = min(tile, 2 * size)  # the bound tightens fastest with small early tiles
        m = stop - start
        bound = best if slack is None else np.nextafter(slack(best), np.inf)
        if R.box:
            box_fused_tile(F, FT, np.arange(start, stop), k, bound, -1, buf, med, evals)  # index order: strict
            walked = int(np.minimum(evals[:m], n).sum())  # a row's walk visits distinct columns
            evaluated += walked
            recomputed += int(evals[:m].sum()) - walked
        elif direct:
            fused(F, start, stop, k, bound, arg, buf, med)
            evaluated += m * n
        else:
            D = l1_rows(F, np.arange(start, stop), buf)
            tile_select(D, k, bound, med)
            evaluated += m * n
        meds = med[:m]
        if seen is not None:
            seen[start:stop] = meds
        r = int(np.argmin(meds))
        if meds[r] < best:
            best = float(meds[r])
            best_index = start + r
        start = stop
    if stats is not None:
        stats.update(evaluated=int(evaluated), recomputed=int(recomputed))
    return best_index, best
