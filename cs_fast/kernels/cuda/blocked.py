"""Register-blocked device kernels for the long sums ``l1`` (``tv``), ``sq`` and ``l2`` (numba.cuda).

One kernel factory, :func:`kernel`, builds a distance kernel per reduction
(the per-feature term is chosen at build time from the record's ``chunk``
pair function: ``|a - b|`` for ``l1``, ``(a - b)**2`` for ``sq`` and
``l2``; ``l2``, whose record says ``root``, takes the square root at the
end) and accumulation mode:

* **narrow** (float32 inputs, float32 output: ``cdist``/``pdist``): float32
  terms summed in float32 and flushed into a float64 sum every ``flush``
  features (``DeviceConfig.flush``, default :data:`FLUSH`). Within the
  relative bound of :func:`bound` (below).
* **wide** (any input dtype): the same blocking with float64 terms and
  sums, flushed into a second float64 sum every ``flush`` features (a
  two-level sum: relative error about ``(flush + d / flush)`` float64 ulps
  instead of ``d``). Not on a production path: float64 ``cdist``,
  ``min_median``'s and the pruned center's tiles keep the tiled kernel of
  :mod:`cs_fast.kernels.cuda.direct`, whose chunk order the fused count
  repeats bit for bit; ``bench/gpu_bench.py`` measures this mode beside it.

Shape of the work. A block of ``T x T`` threads (16 x 16 on a GPU) owns a
``T R x T R`` tile of outputs (64 x 64), ``R x R`` per thread (4 x 4) held
in registers; output ``(r, c)`` of thread ``(ty, tx)`` is the pair
``(i0 + ty + r T, j0 + tx + c T)``. Per step, ``K`` features (16) of the
tile's ``T R`` rows of each side are staged in shared memory, feature-major
(``sA[k, row]``): a thread loads ``R`` values of each side per feature and
each feeds ``R`` outputs (2 R shared loads per ``R**2`` terms instead of 2 per
term; the feature loop is unrolled ``UNROLL`` = 4 deep and indexes with
unsigned integers, so the compiled inner loop is the loads and the
arithmetic: 230 PTX instructions for 64 pair-features, 6 of them loop
control, ``bench/gpu_model.py`` reads it off). Bank conflicts: reading, a
warp (two ``ty``, sixteen ``tx``) takes two broadcast values of ``sA`` and
sixteen consecutive values of ``sB``; staging, consecutive threads take
consecutive features of one row (coalesced global reads), so they write a
column of the staged tile, and the row stride
``T R + PAD`` is chosen odd in 8-byte words (float64: ``PAD = 1``) and 2 mod
32 in 4-byte words (float32: ``PAD = 2``), which spreads those writes over
distinct banks. No vectorized loads or double buffering: the simple form is
what the simulator checks (the model in ``bench/gpu_model.py`` estimates
what is left on the table).

Out-of-range rows and features are staged as zeros on both sides; a zero
pair adds exactly nothing (``acc + |0 - 0|``, ``acc + 0 * 0``, also under
FMA), and the flush cadence counts features from 0. So an entry's value
depends only on its two rows, never on where it sits in a tile: any tiling
of the same rows (brute force's row tiles, the pruned center's gathered
rows) gives the same floats bit for bit.

Accuracy of the narrow mode (the derivation behind :func:`bound`). Let
``u = 2**-24`` (float32 unit roundoff), ``F = flush`` and ``gamma_n = n u /
(1 - n u)``; ``|prod (1 + e_i)**(+-1) - 1| <= gamma_n`` for ``n`` factors with
``|e_i| <= u`` (Higham, Lemma 3.1). Inputs are float32, so exact; with ``S``
the exact sum of the terms of the exact inputs:

* ``l1``: the term ``fl(a - b) = (a - b)(1 + e)`` (``abs`` is exact); a
  chunk of at most ``F`` non-negative terms summed from 0 rounds ``F - 1``
  times (the first addition to 0 is exact), so a chunk is its exact sum
  times ``(1 + t)``, ``|t| <= gamma_F``. Chunks are non-negative and added
  in float64 (``N = ceil(d / F)`` roundings of ``2**-53``, at most ``u / 2``
  in all for ``d < 2**28 F``) and the result is rounded once to float32:
  relative error ``<= gamma_(F + 1) + u / 2 + O(u**2) < (F + 2) u``.
* ``sq``: the term is ``fl(fl(a - b)**2) = (a - b)**2 (1 + e1)**2 (1 + e2)``:
  three roundings (under FMA contraction, ``acc + t * t`` rounds once and
  ``e2 = 0``: the bound covers both). ``F - 1`` additions, float64 flushes
  and the float32 output as for ``l1``: ``< (F + 4) u``.
* ``l2 = sqrt(sq)``: the float64 sum is ``S (1 + t)`` with ``|t| <= gamma_(F
  + 2) + u / 2``; ``|sqrt(1 + t) - 1| = |t| / (1 + sqrt(1 + t)) <= |t| / (2 -
  |t|)``; the float64 square root and the float32 output round once each:
  ``< (F / 2 + 3) u``.

With the default ``flush = 32``: ``l1`` 34 u = 2.03e-6, ``sq`` 36 u = 2.15e-6, ``l2``
19 u = 1.13e-6, far inside the ``2**-10`` that ``cdist``/``pdist`` with
float32 output promise. The bound is relative and needs the float32 terms to
be normal numbers: a ``sq`` term ``(a - b)**2`` below ``2**-126`` (``|a - b|
< 2**-63``) rounds with an absolute error of up to ``2**-150``, so the full
statement is ``|D - D_exact| <= bound * D_exact + d 2**-149`` (:data:`TINY32`
per feature; ``l1``'s subtraction of two float32 values never underflows
inexactly). A partial sum above float32's largest value overflows to inf
(only for distances near ``3.4e38``, which the float32 output cannot hold
either). It is reached: ``|a - b| = 1`` then ``F - 1`` terms of exactly half
an ulp of 1 (each rounds away, ties to even) lose ``(F - 1) u``
(``tests/cuda_sim/test_blocked_kernels.py`` checks the error exceeds the
bound of ``F / 2``).

No float32 value from here reaches a certificate: ``min_median``'s
distance rows, the pruned center and ``to_center`` keep float64 sums. The
device ``min_median``'s count of float32 ``tv`` rows
(:mod:`cs_fast.kernels.cuda.count`) reads the narrow sums of
:func:`parts` only to decide ``d < best`` outside a margin that holds this
bound with room to spare; inside it the float64 distance decides.
"""

import functools
import math

import numpy as np

from .. import reductions
from . import runtime

FLUSH = runtime.DEFAULT.flush  # the default of DeviceConfig.flush: 32 features a flush
BLK_T = 16  # threads per side of a block
BLK_R = 4  # outputs per thread per side: a 64 x 64 output tile
BLK_K = 16  # features staged per step
UNROLL = 4  # staged features per unrolled inner step (divides K)
SIM_T, SIM_R, SIM_K = 4, 2, 4  # under the simulator (a Python thread per CUDA thread): 8 x 8 tiles
U32 = 2.0 ** -24  # float32 unit roundoff
TINY32 = 2.0 ** -149  # per feature: the absolute slack of float32 underflow (see the module docstring)
REDUCTIONS = tuple(r for r in map(reductions.get, reductions.NAMES) if r.tiled)  # the long sums: l1, sq, l2

# The narrow mode's relative bound is (a F + b) u (derived in the module docstring), by the
# record's chunk pair function and root.
_BOUND_TERMS = {("l1_pair", False): (1.0, 2.0), ("sq_pair", False): (1.0, 4.0), ("sq_pair", True): (0.5, 3.0)}

cuda = None  # numba.cuda once loaded: a module global, as the CUDA simulator requires


def _long_sum(reduction):
    """The record of ``reduction``, which must be a long sum (a record with a ``chunk``)."""
    R = reductions.get(reduction)
    if not R.tiled:
        raise ValueError(f"reduction: received {reduction!r}; expected one of {', '.join(map(str, REDUCTIONS))}")
    return R


def bound(reduction, flush=FLUSH):
    """Relative error bound of the narrow (float32) mode's entries for ``reduction``.

    ``(F + 2) u`` for ``l1``, ``(F + 4) u`` for ``sq``, ``(F / 2 + 3) u`` for
    ``l2``, with ``u = 2**-24`` and ``F = flush``; derived in the module
    docstring. Holds for ``d < 2**28 F`` features whose float32 terms do not
    underflow (else add ``d * TINY32``).
    """
    R = _long_sum(reduction)
    a, b = _BOUND_TERMS[(R.chunk, R.root)]
    return (a * flush + b) * U32


def block_shape(small=None):
    """``(T, R, K)``: production sizes on a GPU, small ones under the simulator (``small``: default
    :func:`cs_fast.kernels.cuda.runtime.simulated`)."""
    small = runtime.simulated() if small is None else small
    return (SIM_T, SIM_R, SIM_K) if small else (BLK_T, BLK_R, BLK_K)


def parts(reduction, wide, flush=FLUSH, small=None):
    """The pieces every register-blocked kernel shares, built once per configuration.

    Returns a dict: ``tile_sums`` (the device function below), ``T``, ``R``,
    ``tile`` (``T R``), ``sshape`` (the staged tiles' shape), ``acc_t`` (the
    staging and chunk dtype) and ``zero``. ``tile_sums(A, na, i0, B, nb, j0,
    sA, sB, lo, hi, a, b, active)`` leaves in ``hi[r, c]`` (float64) the sum
    of thread ``(ty, tx)``'s output ``(r, c)``, the pair ``(i0 + ty + r T, j0
    + tx + c T)``, out-of-range pairs summing zeros; every thread of the
    block must call it (it stages and has barriers), but only an ``active``
    thread does the arithmetic (an inactive one's ``hi`` is meaningless; a
    warp whose threads are all inactive skips it). ``sA``, ``sB`` are shared arrays of
    ``sshape`` and ``acc_t``; ``lo`` (``acc_t``), ``hi`` (float64) local
    ``R x R``; ``a``, ``b`` local ``R`` of ``acc_t``. Used by
    :func:`kernel` and by the fused count of :mod:`cs_fast.kernels.cuda.count`,
    so both sum each pair in the same order (the same floats bit for bit).
    ``flush``: features summed before a flush (a multiple of the staged step).
    """
    R = _long_sum(reduction)
    return _parts(R, bool(wide), int(flush), runtime.simulated() if small is None else bool(small))


@functools.lru_cache(maxsize=None)
def _parts(Rec, wide, flush, small):
    global cuda
    cuda = runtime.cuda_module()
    from numba import float32, float64

    T, R, K = block_shape(small)
    if flush < K or flush % K:
        raise ValueError(f"flush: received {flush}; expected a positive multiple of the staged step {K}")
    flush_steps = flush // K
    tile = T * R
    if (T * T) % K or (K * tile) % (T * T) or K % UNROLL:
        raise ValueError(f"(T, R, K) = {(T, R, K)}: K must divide T^2, T^2 divide K T R, UNROLL divide K")
    STAGE = K * tile // (T * T)  # staged entries per thread and side a step
    ROWSTEP = T * T // K  # rows between a thread's staged entries
    acc_t = float64 if wide else float32
    zero = 0.0 if wide else np.float32(0.0)
    device = cuda.jit(device=True)

    term = device(_TERMS[Rec.chunk])  # the chunk pair function's per-feature term

    @device
    def tile_sums(A, na, i0, B, nb, j0, sA, sB, lo, hi, a, b, active):
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * T + tx
        d = A.shape[1]
        for r in range(R):
            for c in range(R):
                lo[r, c] = zero
                hi[r, c] = 0.0
        # Staging: thread tid stages feature kt of rows rt, rt + T^2 / K, ... of each side (consecutive
        # threads, consecutive features of a row: coalesced); the mapping is fixed for the whole loop.
        kt = tid % K
        rt = tid // K
        ku = np.uint64(kt)
        step = 0
        for k0 in range(0, d, K):
            # Out-of-range entries are zeros on both sides (a zero pair adds 0). Unsigned indices:
            # no negative-index wraparound code (every index here is >= 0).
            k = k0 + kt
            kg = np.uint64(k)
            for s in range(STAGE):
                rr = rt + s * ROWSTEP
                ia = i0 + rr
                jb = j0 + rr
                sA[ku, np.uint64(rr)] = acc_t(A[np.uint64(ia), kg]) if (ia < na and k < d) else zero
                sB[ku, np.uint64(rr)] = acc_t(B[np.uint64(jb), kg]) if (jb < nb and k < d) else zero
            cuda.syncthreads()
            if active:
                for kq in range(0, K, UNROLL):
                    for q in range(UNROLL):  # constant trip counts: unrolled, loop control amortized
                        # Unsigned indices: numba adds no negative-index wraparound to the hot loop.
                        kk = np.uint64(kq + q)
                        for r in range(R):
                            a[r] = sA[kk, np.uint64(ty + r * T)]
                            b[r] = sB[kk, np.uint64(tx + r * T)]
                        for r in range(R):
                            for c in range(R):
                                lo[r, c] = term(a[r], b[c], lo[r, c])
            cuda.syncthreads()
            step += 1
            if step == flush_steps:  # every `flush` features, counted from feature 0
                for r in range(R):
                    for c in range(R):
                        hi[r, c] += float64(lo[r, c])
                        lo[r, c] = zero
                step = 0
        for r in range(R):
            for c in range(R):
                hi[r, c] += float64(lo[r, c])

    # Row stride of the staged tiles: odd in 8-byte words, 2 mod 32 in 4-byte words (no bank conflicts).
    got = dict(tile_sums=tile_sums, T=T, R=R, tile=tile, sshape=(K, tile + (1 if wide else 2)),
               acc_t=acc_t, zero=zero)
    return got




def _l1_term(x, y, acc):
    return acc + abs(x - y)


def _sq_term(x, y, acc):
    t = x - y
    return acc + t * t


# The per-feature term of the register-blocked sums, by the record's chunk pair function.
_TERMS = {"l1_pair": _l1_term, "sq_pair": _sq_term}


def kernel(reduction, wide, flush=FLUSH, small=None):
    """``(kernel, T, tile)``: the register-blocked kernel of ``reduction`` (built once per configuration).

    ``wide``: float64 terms and sums (any input dtype); else float32 terms
    and sums flushed to float64 every ``flush`` features (float32 inputs
    only). The kernel's signature is ``(A, B, out)``; it writes
    ``out[i, j] = D(A[i], B[j])``. ``small``: the simulator's block sizes
    (default :func:`cs_fast.kernels.cuda.runtime.simulated`).
    """
    R = _long_sum(reduction)
    return _kernel(R, bool(wide), int(flush), runtime.simulated() if small is None else bool(small))


@functools.lru_cache(maxsize=None)
def _kernel(Rec, wide, flush, small):
    p = _parts(Rec, wide, flush, small)
    from numba import float64

    tile_sums, T, R, tile, sshape, acc_t = p["tile_sums"], p["T"], p["R"], p["tile"], p["sshape"], p["acc_t"]
    rshape = (R, R)
    root = Rec.root

    @cuda.jit
    def blocked(A, B, out):
        sA = cuda.shared.array(sshape, acc_t)
        sB = cuda.shared.array(sshape, acc_t)
        lo = cuda.local.array(rshape, acc_t)  # the current chunk's sums
        hi = cuda.local.array(rshape, float64)  # the flushed chunks
        a = cuda.local.array(R, acc_t)
        b = cuda.local.array(R, acc_t)
        i0 = cuda.blockIdx.y * tile
        j0 = cuda.blockIdx.x * tile
        na = A.shape[0]
        nb = B.shape[0]
        tile_sums(A, na, i0, B, nb, j0, sA, sB, lo, hi, a, b, True)
        for r in range(R):
            i = i0 + cuda.threadIdx.y + r * T
            for c in range(R):
                j = j0 + cuda.threadIdx.x + c * T
                if i < na and j < nb:
                    v = hi[r, c]
                    out[i, j] = math.sqrt(v) if root else v

    return blocked, T, tile


def narrow_applies(reduction, A, out_dtype):
    """Whether ``pairwise`` may take the narrow (float32) mode: float32 inputs and a float32 output."""
    return (reductions.get(reduction).tiled and np.dtype(A.dtype) == np.float32
            and np.dtype(out_dtype) == np.float32)


def launch(reduction, A, B, out, wide, flush=FLUSH):
    """Fill the device array ``out`` with the ``(na, nb)`` distances of ``A`` and ``B``; returns ``out``.

    ``wide=False`` needs float32 ``A`` and ``B`` (see :func:`narrow_applies`).
    Rows of ``A`` beyond one grid's height go in further launches.
    """
    if not wide and np.dtype(A.dtype) != np.float32:
        raise TypeError(f"A: received dtype {A.dtype}; the narrow (float32) mode expects float32 inputs")
    blocked, T, tile = kernel(reduction, wide, flush)
    na, nb = A.shape[0], B.shape[0]
    step = runtime.MAX_GRID_Y * tile
    for r0 in range(0, na if nb else 0, step):
        r1 = min(na, r0 + step)
        runtime.launch(blocked, (runtime.blocks(nb, tile), runtime.blocks(r1 - r0, tile)), (T, T))(
            A[r0:r1], B, out[r0:r1])
    return out
