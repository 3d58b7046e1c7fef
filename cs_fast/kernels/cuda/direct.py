"""The direct distance kernels: one pair function, one device arithmetic, and their launchers.

* a generic 2-D grid kernel, one thread per pair, built from the retargeted
  pair function of :mod:`cs_fast.kernels.pair` (one definition of the math,
  two targets). Serves boxes, masks, angular, ``tv``/``tv2`` on the images
  themselves (the samples' difference first), weighted ``sqfeat`` (``wsq``),
  and grouped-l2 on tv's estimate features.
* for the long sums (the records with a ``chunk`` pair function: ``l1``,
  ``sq``, ``l2``), a 16 x 16 shared-memory tiled kernel with float64 chunk
  sums. It fixes the one device arithmetic of a long sum: ``T``-feature
  chunk sums, each summed by the ``chunk`` pair function, added in chunk
  order, the square root last where the record says ``root``. The fused
  count (:mod:`cs_fast.kernels.cuda.count`), :func:`to_center` and
  :func:`paired` repeat it bit for bit, so ``min_median`` and the pruned
  center select from the same floats.
* :func:`to_center` of the long sums: a warp per row, lane ``l`` summing the
  ``T``-feature chunks ``l, l + 32, ...`` exactly as the tiled kernel sums a
  chunk, and lane 0 adding the chunk sums in chunk order: the tiled kernel's
  bits. ``paired`` likewise (one thread a pair).

Every kernel is generic in the tile size ``T``; it is fixed per build
(:func:`cs_fast.kernels.cuda.runtime.tile`) and the kernels are memoized on it.
"""

import functools
import math
from typing import NamedTuple

import numpy as np

from .. import reductions
from . import runtime
from .radix import device_functions
from .runtime import MAX_GRID_Y, ROWS_PER_BLOCK, blocks, empty, kernel_arg, launch

cuda = None  # numba.cuda once loaded: a module global, as the CUDA simulator requires


class DirectKernels(NamedTuple):
    """The direct kernels of one reduction (see :func:`reduction_kernels`)."""

    generic: object  # (A, B, arg, out): one thread a pair
    tiled: object  # (A, B, arg, out): the long sums' T x T tiled kernel, else None
    column: object  # (F, C, arg, out): a thread a row, distances to the row C[0]
    paired: object  # (A, B, arg, out): a thread a pair of matching rows
    T: int  # the tile size the kernels were built with
    lanes: object  # (F, C, arg, out): the long sums' warp-per-row to_center, else None


@functools.lru_cache(maxsize=None)
def reduction_kernels(R, small):
    """The :class:`DirectKernels` of the reduction record ``R`` with the simulator's (``small``) or a GPU's sizes."""
    global cuda
    dev = device_functions()
    cuda = runtime.cuda_module()

    pair_fn = getattr(dev, R.pair)
    T = runtime.SIM_TILE if small else runtime.TILE

    @cuda.jit
    def generic(A, B, arg, out):
        j, i = cuda.grid(2)  # x runs along out's rows: coalesced stores
        if i < A.shape[0] and j < B.shape[0]:
            out[i, j] = pair_fn(A, i, B, j, arg)

    if R.tiled:
        chunked, lanes_kernel, tiled = _long_sum_kernels(R, T, runtime.SIM_LANES if small else runtime.LANES)
        exact_fn = chunked
    else:
        lanes_kernel = tiled = None
        exact_fn = pair_fn

    @cuda.jit
    def column(F, C, arg, out):
        i = cuda.grid(1)
        if i < F.shape[0]:
            out[i] = exact_fn(F, i, C, 0, arg)

    @cuda.jit
    def paired(A, B, arg, out):
        i = cuda.grid(1)
        if i < A.shape[0]:
            out[i] = exact_fn(A, i, B, i, arg)

    return DirectKernels(generic, tiled, column, paired, T, lanes_kernel)


def _long_sum_kernels(R, T, W):
    """(chunked device function, warp-per-row to_center kernel, tiled kernel) of a long sum."""
    from numba import float64

    # The long sums' one device arithmetic, the tiled kernel's: T-feature chunk sums, each
    # summed in order by chunk_fn, added in chunk order (pairwise, the fused counts, to_center
    # and paired all give these bits).
    chunk_fn = getattr(device_functions(), R.chunk)
    root = R.root
    RB = ROWS_PER_BLOCK
    lane_shape = (RB, W)
    shape = (T, T + 1)  # a shared array's shape must be a compile-time constant

    @cuda.jit(device=True)
    def chunked(A, i, B, j, arg):
        acc = 0.0
        for k0 in range(0, A.shape[1], T):
            acc += chunk_fn(A[:, k0:k0 + T], i, B[:, k0:k0 + T], j, arg)
        return math.sqrt(acc) if root else acc

    @cuda.jit
    def lanes_kernel(F, C, arg, out):
        # W lanes per row: lane l sums the T-feature chunks l, l + W, ... (chunk_fn, as the tiled
        # kernel sums a chunk) into shared memory; lane 0 then adds each round's W chunk sums in
        # chunk order. The same bits as `chunked`, with the row read by W lanes at once.
        part = cuda.shared.array(lane_shape, float64)
        lane = cuda.threadIdx.x
        rr = cuda.threadIdx.y
        i = cuda.blockIdx.x * RB + rr
        ok = i < F.shape[0]
        d = F.shape[1]
        acc = 0.0
        for c0 in range(0, d, W * T):
            k0 = c0 + lane * T
            part[rr, lane] = chunk_fn(F[:, k0:k0 + T], i, C[:, k0:k0 + T], 0, arg) if (ok and k0 < d) else 0.0
            cuda.syncthreads()
            if lane == 0:
                for q in range(W):
                    if c0 + q * T < d:
                        acc += part[rr, q]
            cuda.syncthreads()
        if lane == 0 and ok:
            out[i] = math.sqrt(acc) if root else acc

    @cuda.jit
    def tiled(A, B, arg, out):
        sA = cuda.shared.array(shape, float64)
        sB = cuda.shared.array(shape, float64)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        i0 = cuda.blockIdx.y * T
        j0 = cuda.blockIdx.x * T
        na = A.shape[0]
        nb = B.shape[0]
        d = A.shape[1]
        if tx == 0:  # the padding column stays zero: it adds |0 - 0| = 0
            sA[ty, T] = 0.0
            sB[ty, T] = 0.0
        acc = 0.0
        for k0 in range(0, d, T):
            k = k0 + tx
            # Out-of-range rows and features are staged as zeros on both sides.
            sA[ty, tx] = np.float64(A[i0 + ty, k]) if (i0 + ty < na and k < d) else 0.0
            sB[ty, tx] = np.float64(B[j0 + ty, k]) if (j0 + ty < nb and k < d) else 0.0
            cuda.syncthreads()
            acc += chunk_fn(sA, ty, sB, tx, arg)
            cuda.syncthreads()
        if i0 + ty < na and j0 + tx < nb:
            out[i0 + ty, j0 + tx] = math.sqrt(acc) if root else acc

    return chunked, lanes_kernel, tiled


def launch_grid(kernel, T, A, B, arg, out):
    """Launch a one-output-a-thread 2-D kernel ``kernel(A, B, arg, out)`` over ``out``'s (na, nb) entries."""
    na, nb = A.shape[0], B.shape[0]
    step = MAX_GRID_Y * T  # rows of A one launch can cover (grid y is limited)
    for r0 in range(0, na if nb else 0, step):
        r1 = min(na, r0 + step)
        launch(kernel, (blocks(nb, T), blocks(r1 - r0, T)), (T, T))(A[r0:r1], B, kernel_arg(arg), out[r0:r1])
    return out


def launch_pairwise(reduction, A, B, arg, out):
    """Fill the device array ``out`` with the (na, nb) float64-summed distances of ``A`` and ``B``.

    The long sums run the tiled kernel (float64 chunk sums): the fused count
    of :mod:`cs_fast.kernels.cuda.count` repeats its summation order, so
    ``min_median`` and the pruned center (:mod:`cs_fast.kernels.cuda.prune`)
    select from the same floats bit for bit. The other reductions run the
    generic one-thread-per-pair kernel.
    """
    K = reduction_kernels(reductions.get(reduction), runtime.simulated())
    return launch_grid(K.tiled if K.tiled is not None else K.generic, K.T, A, B, arg, out)


def _rowwise(kernel, A, B, arg, out):
    if out is None:
        out = empty(A.shape[0], np.float64)
    if A.shape[0]:
        threads = 128
        launch(kernel, blocks(A.shape[0], threads), threads)(A, B, kernel_arg(arg), out)
    return out


def to_center(reduction, F, C, arg, out=None):
    """float64 device distances from every row of ``F`` to the row ``C`` (shape (1, d)).

    ``out``: a float64 device vector of length ``len(F)`` to write into (e.g. a
    slice of a preallocated array); a new one by default. The long sums
    (``l1``/``tv``, ``sq``, ``l2``) run a warp per row (lane ``l`` adds
    features ``l, l + 32, ...``: coalesced reads), the others a thread per row.
    """
    small = runtime.simulated()
    K = reduction_kernels(reductions.get(reduction), small)
    if K.lanes is None:
        return _rowwise(K.column, F, C, arg, out)
    if out is None:
        out = empty(F.shape[0], np.float64)
    n = F.shape[0]
    if n:
        W = runtime.SIM_LANES if small else runtime.LANES
        launch(K.lanes, blocks(n, ROWS_PER_BLOCK), (W, ROWS_PER_BLOCK))(F, C, kernel_arg(arg), out)
    return out


def paired(reduction, A, B, arg):
    """float64 device array of the distances ``d(A[i], B[i])`` of matching rows."""
    return _rowwise(reduction_kernels(reductions.get(reduction), runtime.simulated()).paired, A, B, arg, None)
