"""The box ``min_median``'s fused count-and-select: float32 boxes with a rigorous margin.

Counting pass of the box min_median in float32. The test d < t (t the best
median so far) is g = (U - I) - t U < 0 (U > 0), computed from float32 boxes
shifted by a common origin. With u = 2**-24 and S the largest |coordinate|
of the two shifted boxes, each shifted coordinate is within (u + 2**-53) S of
exact, so every float32 length is within about 4.01 u S of exact, a product
of two lengths (each <= 2 S) within 20.1 u S**2, U within 80.3 u S**2,
U - I within 112.4 u S**2, t U within 104.3 u S**2 (t <= 1, rounded to
float32) and g within 241 u S**2 of the exact g. The default margin
``DeviceConfig.box_margin`` = 2**-15 = 512 u leaves more than 2x of slack
(the float64 distance the exact pass compares is itself within a few 2**-53
of exact); ``box_tiny`` covers underflow (every term subnormal: the margin
then admits the pair). Outside +-margin the float32 sign is the exact one;
inside, or with NaN/inf from float32 overflow (both comparisons false), the
pair is decided by the float64 box_pair, as brute force does.
"""

import functools
import math
from typing import NamedTuple

import numpy as np

from . import runtime
from .radix import BINS, INF_BITS, device_functions

cuda = None  # numba.cuda once loaded: a module global, as the CUDA simulator requires


class BoxKernels(NamedTuple):
    """The box ``min_median``'s kernels (see :func:`box_kernels`)."""

    box32: object  # (F, G): float32 boxes shifted to a common origin, and their largest |coordinate|
    box_rows: object  # the fused count-and-select, a block a row
    box_decide: object  # the device function (G, i, j, t32) -> 1 / 0 / -1 (inside the margin)


@functools.lru_cache(maxsize=None)
def box_kernels(margin, tiny, check_sweeps, shared_keys):
    """The :class:`BoxKernels` with the float32 ``margin`` and ``tiny`` of the count compiled in.

    ``check_sweeps``, ``shared_keys``: as :class:`cs_fast.kernels.cuda.runtime.DeviceConfig`'s
    ``box_check_sweeps`` and ``shared_keys``. Built once per combination.
    """
    global cuda
    dev = device_functions()
    cuda = runtime.cuda_module()
    from numba import float32, int32, int64, uint64

    box_pair = dev.box_pair
    margin = np.float32(margin)
    tiny = np.float32(tiny)
    zero32 = np.float32(0.0)

    @cuda.jit(device=True)
    def box_decide(G, i, j, t32):
        # 1: d(i, j) < t for sure, 0: not, -1: inside the margin (decide in float64).
        ax1 = G[i, 0]
        ay1 = G[i, 1]
        ax2 = G[i, 2]
        ay2 = G[i, 3]
        bx1 = G[j, 0]
        by1 = G[j, 1]
        bx2 = G[j, 2]
        by2 = G[j, 3]
        iw = max(min(ax2, bx2) - max(ax1, bx1), zero32)
        ih = max(min(ay2, by2) - max(ay1, by1), zero32)
        inter = iw * ih
        union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
        g = (union - inter) - t32 * union
        S = max(G[i, 4], G[j, 4])
        e = S * S * margin + tiny
        if g < -e:
            return 1
        if g > e:
            return 0
        return -1


    @cuda.jit
    def box32(F, G):
        # G[i] = float32 of F[i] shifted by F[0]'s corner (a common origin), and max |coordinate|.
        i = cuda.grid(1)
        if i < F.shape[0]:
            ox = F[0, 0]
            oy = F[0, 1]
            x1 = float32(F[i, 0] - ox)
            y1 = float32(F[i, 1] - oy)
            x2 = float32(F[i, 2] - ox)
            y2 = float32(F[i, 3] - oy)
            G[i, 0] = x1
            G[i, 1] = y1
            G[i, 2] = x2
            G[i, 3] = y2
            G[i, 4] = max(max(abs(x1), abs(y1)), max(abs(x2), abs(y2)))

    select_key = dev.block_select_key
    key_bits = dev.key_bits

    @cuda.jit
    def box_rows(F, G, rows, start, k, nbits, sign, full, bound, bound_index, D, keys, med_bits):
        # One block per row i (rows[r], or start + r when rows is empty): count its distances
        # below the best in float32 (float64 inside the margin). Below means d < best for rows
        # after the best's index and d <= best before it (an equal median with a smaller index
        # still wins). A row with fewer than k such distances cannot win: inf. Only the other
        # rows get their float64 distance row and the exact radix select, whose median is
        # written as float64 bits to med_bits[r] (the inverse of its order key: no find pass).
        hist = cuda.shared.array(BINS, int32)
        prefix_s = cuda.shared.array(1, uint64)
        state = cuda.shared.array(3, int64)
        buf = cuda.shared.array(shared_keys, uint64)
        r = cuda.blockIdx.x
        i = rows[r] if rows.shape[0] > 0 else start + r
        tid = cuda.threadIdx.x
        n = F.shape[0]
        b = bound[0]
        if b < math.inf:
            t32 = float32(b)
            ties = i < bound_index[0]
            if tid == 0:
                hist[0] = 0
            cuda.syncthreads()
            # Exact early exit every `chunk` columns: the row can win once its count reaches k, and
            # cannot once its count plus the columns left is below k. The total is read between
            # two barriers, so every thread sees the same value and takes the same branch.
            chunk = cuda.blockDim.x * check_sweeps
            total = 0
            for c0 in range(0, n, chunk):
                c = 0
                for j in range(c0 + tid, min(n, c0 + chunk), cuda.blockDim.x):
                    v = box_decide(G, i, j, t32)  # its margin covers both < and <=
                    if v < 0:
                        d = box_pair(F, i, F, j, 0)
                        v = 1 if (d < b or (ties and d == b)) else 0
                    c += v
                cuda.atomic.add(hist, 0, c)
                cuda.syncthreads()
                total = hist[0]
                cuda.syncthreads()
                if total >= k or total + (n - c0 - chunk) < k:
                    break
            if total < k:
                if tid == 0:
                    med_bits[r] = INF_BITS
                return
        row = D[r]
        for j in range(tid, n, cuda.blockDim.x):
            row[j] = box_pair(F, i, F, j, 0)
        cuda.syncthreads()
        want, _ = select_key(keys[r], k, nbits, sign, full, hist, prefix_s, state, buf)
        if tid == 0:
            med_bits[r] = key_bits(want, sign, full)

    return BoxKernels(box32, box_rows, box_decide)
