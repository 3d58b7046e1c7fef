"""Device featurize and the small device helpers of the bindings (numba.cuda).

Compute only, no validation. The featurize kernels produce exactly the layout
of the host featurize in :mod:`cs_fast.metrics` (the per-element math is
:mod:`cs_fast.kernels.features`, compiled here for the device and by
:mod:`cs_fast.kernels.cpu` for the host):

========== ==================================================================
boxes      float64 copy, every empty box set to [0, 0, 0, 0]
masks      bit-packed uint64 words, ``np.packbits`` order
tv         the estimate features: neighbour differences of the samples centred
           on a per-pixel lower median of some of them (``tv_centre``), channel-
           major or grouped by position, and the norms of their bound
========== ==================================================================

The other metrics' canonical features are the rows themselves (no kernel).

The helpers count what validation needs (rows with NaN/inf, all-zero rows,
distances within a radius) so only counts come back to the host, and
condense row blocks of a distance matrix for ``pdist``.

As everywhere in :mod:`cs_fast.kernels.cuda`, nothing compiles (nor is
numba-cuda imported) until the first call, and the kernels name ``cuda`` as
a module global, which the simulator requires.
"""

import functools
import math

import numpy as np

from .. import features
from ..retarget import retarget
from . import runtime
from .runtime import MAX_GRID_Y, empty, fetch, upload

cuda = None  # numba.cuda once loaded: a module global, as the CUDA simulator requires
THREADS = 128  # 1-D blocks
TILE2 = 16  # 2-D blocks are TILE2 x TILE2
# Under the simulator every CUDA thread is a Python thread: small blocks keep tests fast.
SIM_THREADS = 8
SIM_TILE2 = 4


@functools.lru_cache(maxsize=None)
def kernels():
    """The featurize and helper kernels by name (built once; every kernel is generic in its block size)."""
    global cuda
    cuda = runtime.cuda_module()
    from numba import float64

    dev = retarget([features], cuda.jit(device=True))
    tv_index, tv_centred, norms_of = dev.tv_index, dev.tv_centred_difference, dev.tv_norms
    lower_median = dev.lower_median_column
    empty_box, mask_word = dev.empty_box, dev.mask_word

    @cuda.jit
    def boxes(X, out):
        i = cuda.grid(1)
        if i < X.shape[0]:
            x1 = np.float64(X[i, 0])
            y1 = np.float64(X[i, 1])
            x2 = np.float64(X[i, 2])
            y2 = np.float64(X[i, 3])
            if empty_box(x1, y1, x2, y2):
                x1 = y1 = x2 = y2 = 0.0
            out[i, 0] = x1
            out[i, 1] = y1
            out[i, 2] = x2
            out[i, 3] = y2

    @cuda.jit
    def masks(M, out):
        w, r = cuda.grid(2)
        for i in range(r, out.shape[0], cuda.gridsize(2)[1]):
            if w < out.shape[1]:
                out[i, w] = mask_word(M, i, w)

    @cuda.jit
    def tv_estimate(X, C0, grouped, out):
        # The estimate features of tv: neighbour differences of X - C0 in float64, stored in out's dtype.
        t, r = cuda.grid(2)
        C = X.shape[1]
        H = X.shape[2]
        W = X.shape[3]
        P = (H - 1) * W + H * (W - 1)
        c = t // P
        p = t - c * P
        for i in range(r, X.shape[0], cuda.gridsize(2)[1]):
            if t < C * P:
                out[i, tv_index(p, c, C, P, grouped)] = tv_centred(X, C0, i, c, p, H, W)

    @cuda.jit
    def tv_norms(X, C0, G, norms):
        # norms[i] = (sum |G[i]|, sum |X[i] - C0|) in float64, a thread a row (the estimate bound's a_i, b_i).
        i = cuda.grid(1)
        if i < X.shape[0]:
            norms[i, 0], norms[i, 1] = norms_of(G, X, C0, i)

    @cuda.jit
    def lower_median_rows(X, step, count, out):
        # out[k] = the lower median of X[0, k], X[step, k], ... (count rows), as float64: a thread a column.
        k = cuda.grid(1)
        if k < X.shape[1]:
            out[k] = lower_median(X, k, step, count, cuda.local.array(15, float64))

    @cuda.jit
    def flag_rows(X, nonzero, flags):
        # flags[i] = 1 if row i has a NaN/inf (nonzero: a non-zero) entry; every
        # writer writes the same 1, so the races are benign.
        k, r = cuda.grid(2)
        for i in range(r, X.shape[0], cuda.gridsize(2)[1]):
            if k < X.shape[1]:
                v = X[i, k]
                hit = (v != 0) if nonzero else (math.isnan(v) or math.isinf(v))
                if hit:
                    flags[i] = 1

    @cuda.jit
    def count_rows(flags, want, out):
        # out = [number of rows with flags == want, first such row (starts at n)]
        i = cuda.grid(1)
        if i < flags.shape[0] and flags[i] == want:
            cuda.atomic.add(out, 0, 1)
            cuda.atomic.min(out, 1, i)

    @cuda.jit
    def zero_ints(a):
        i = cuda.grid(1)
        if i < a.shape[0]:
            a[i] = 0

    @cuda.jit
    def ledger_init(ledger):
        # Every slot: [rows with NaN/inf, first such row, all-zero rows, first such row];
        # "first" starts at a sentinel larger than any row (atomic.min lowers it).
        s = cuda.grid(1)
        if s < ledger.shape[0]:
            ledger[s, 0] = 0
            ledger[s, 1] = 1 << 62
            ledger[s, 2] = 0
            ledger[s, 3] = 1 << 62

    @cuda.jit
    def count_into(flags, want, ledger, slot, column):
        # ledger[slot, column] += rows with flags == want; ledger[slot, column + 1] = min such row.
        i = cuda.grid(1)
        if i < flags.shape[0] and flags[i] == want:
            cuda.atomic.add(ledger, (slot, column), 1)
            cuda.atomic.min(ledger, (slot, column + 1), i)

    @cuda.jit
    def count_within(d, bound, out):
        i = cuda.grid(1)
        if i < d.shape[0] and d[i] <= bound:
            cuda.atomic.add(out, 0, 1)

    @cuda.jit
    def condense(block, i0, n, out):
        # block[r, jj] = d(i0 + r, i0 + 1 + jj); keep j > i, at scipy's condensed position.
        jj, r0 = cuda.grid(2)
        for r in range(r0, block.shape[0], cuda.gridsize(2)[1]):
            i = i0 + r
            j = i0 + 1 + jj
            if jj < block.shape[1] and j > i:
                out[i * n - (i * (i + 1)) // 2 + (j - i - 1)] = block[r, jj]

    return dict(boxes=boxes, masks=masks, tv_estimate=tv_estimate, tv_norms=tv_norms,
                lower_median_rows=lower_median_rows,
                flag_rows=flag_rows, count_rows=count_rows, count_within=count_within,
                condense=condense, zero_ints=zero_ints, ledger_init=ledger_init, count_into=count_into)


def _blocks(count, per_block):
    return max(1, runtime.blocks(count, per_block))


def _launch1(name, count, *args):
    if count:
        threads = SIM_THREADS if runtime.simulated() else THREADS
        runtime.launch(kernels()[name], _blocks(count, threads), threads)(*args)


def _launch2(name, rows, cols, *args):
    # x runs along columns (the contiguous axis): coalesced loads and stores.
    if rows and cols:
        t = SIM_TILE2 if runtime.simulated() else TILE2
        # Rows beyond the grid's y limit are covered by the kernels' row-stride loops.
        runtime.launch(kernels()[name], (_blocks(cols, t), min(_blocks(rows, t), MAX_GRID_Y)), (t, t))(*args)


# --------------------------------------------------------------------------- featurize


def boxes(X):
    """float64 (n, 4) copy of boxes with every empty box set to [0, 0, 0, 0]."""
    out = empty((X.shape[0], 4), np.float64)
    _launch1("boxes", X.shape[0], X, out)
    return out


def masks(M):
    """uint64 (n, ceil(L / 64)) bit-packed rows of the boolean (n, L) array ``M``."""
    out = empty((M.shape[0], (M.shape[1] + 63) // 64), np.uint64)
    _launch2("masks", out.shape[0], out.shape[1], M, out)
    return out


def tv_centre(X):
    """Device twin of :func:`cs_fast.metrics.tv_centre`: per pixel the lower median of up to 15 spread rows."""
    flat = X.reshape(X.shape[0], int(np.prod(X.shape[1:])))
    n = flat.shape[0]
    step = max(1, n // 15)
    count = min(15, (n - 1) // step + 1)
    out = empty(flat.shape[1], np.float64)
    _launch1("lower_median_rows", flat.shape[1], flat, step, count, out)
    return out


def tv_estimate(X, centre, grouped):
    """Estimate features of (n, C, H, W) images centred on the float64 (C * H * W) ``centre``: as ``cpu.tv_estimate``.

    Returns ``(features (n, C * P) in X's dtype, norms (n, 2) float64)``.
    """
    n, C, H, W = X.shape
    P = (H - 1) * W + H * (W - 1)
    out = empty((n, C * P), X.dtype)
    _launch2("tv_estimate", n, C * P, X, centre.reshape(C, H, W), bool(grouped), out)
    norms = empty((n, 2), np.float64)
    _launch1("tv_norms", n, X.reshape(n, C * H * W), centre, out, norms)
    return out, norms


# --------------------------------------------------------------------------- helpers


def _flag(X, nonzero):
    """Device int32 flags: 1 for the rows of ``X`` with a NaN/inf (``nonzero``: a non-zero) entry."""
    n = X.shape[0]
    flags = empty(n, np.int32)
    _launch1("zero_ints", n, flags)
    _launch2("flag_rows", n, X.shape[1], X, bool(nonzero), flags)
    return flags


def flagged_rows(X, nonzero):
    """(count, first) of the rows of the 2-D ``X`` with a NaN/inf entry (``nonzero``: rows
    with no non-zero entry, i.e. all zero); ``first`` is -1 when the count is 0."""
    n = X.shape[0]
    flags = _flag(X, nonzero)
    out = upload(np.array([0, n], dtype=np.int64))
    _launch1("count_rows", n, flags, 0 if nonzero else 1, out)
    count, first = (int(v) for v in fetch(out))
    return count, (first if count else -1)


def new_ledger(slots):
    """A device (slots, 4) int64 ledger of deferred row checks (see :func:`flag_into`), all clear."""
    ledger = empty((max(1, slots), 4), np.int64)
    _launch1("ledger_init", ledger.shape[0], ledger)
    return ledger


def flag_into(X, nonzero, ledger, slot):
    """Record in ``ledger[slot]`` the rows of the 2-D ``X`` that :func:`flagged_rows` would count.

    Columns 0, 1: count and first row with NaN/inf; 2, 3 (``nonzero``): all-zero
    rows. Nothing comes back to the host: :func:`read_ledger` reads every slot
    at once.
    """
    n = X.shape[0]
    if n and X.shape[1]:
        flags = _flag(X, nonzero)
        _launch1("count_into", n, flags, 0 if nonzero else 1, ledger, int(slot), 2 if nonzero else 0)


def read_ledger(ledger):
    """Host (slots, 4) int64 copy of a ledger, "first" set to -1 where the count is 0 (one readback)."""
    host = fetch(ledger).copy()
    host[host[:, 0] == 0, 1] = -1
    host[host[:, 2] == 0, 3] = -1
    return host


def count_within(d, bound):
    """Number of entries of the 1-D device array ``d`` that are ``<= bound``."""
    out = upload(np.zeros(1, dtype=np.int64))
    _launch1("count_within", d.shape[0], d, float(bound), out)
    return int(fetch(out)[0])


def condense(block, i0, n, out):
    """Write the pairs ``j > i`` of a (rows, n - i0 - 1) block of ``pdist`` into ``out``."""
    _launch2("condense", block.shape[0], block.shape[1], block, int(i0), int(n), out)
