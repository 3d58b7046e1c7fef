"""``sq``/``l2`` with cuBLAS: the mixed-precision path of :mod:`cs_fast.kernels.mixed_precision` on the device.

A float32 cuBLAS GEMM (through CuPy, the optional ``cuda`` extra) on centred
rows, the one bound (``mixed_precision.sq_interval`` compiled as a device
function; TF32 only when ``CUPY_TF32`` turns it on, and then counted by the
bound), and float64 refinement on the device by the direct kernels
(:mod:`cs_fast.kernels.cuda.direct`): ``min_median`` stays brute force over
the device's own ``to_center`` distances bit for bit; float32 ``cdist``
stays within ``mixed_precision.CDIST_RTOL``. It serves the records whose
float32 product estimates them (``Reduction.gemm``). The drivers take the
array module ``xp`` (cupy on a GPU); with numpy and the CUDA simulator they
run on the CPU, which is how the tests check the logic without a GPU.
Without CuPy the device keeps its direct float64 kernels.
"""

import contextlib
import functools
import math
import os

import numpy as np

from .. import mixed_precision as mp
from .. import reductions
from . import runtime
from .direct import to_center
from .radix import device_functions, order_statistic
from .runtime import blocks, current_stream, fetch

cuda = None  # numba.cuda once loaded: a module global, as the CUDA simulator requires


def cupy():
    """CuPy where it is installed and usable, else None (the device then sums directly in float64)."""
    if runtime.simulated():
        return None
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def cupy_stream(cp):
    """CuPy work on the current launch stream (a CuPy ExternalStream), or CuPy's own current stream."""
    stream = current_stream()
    if stream == 0:
        return contextlib.nullcontext()
    return cp.cuda.ExternalStream(int(stream))


def gemm_input_roundoff():
    """Input rounding of CuPy's float32 GEMM: TF32's 2**-11 when ``CUPY_TF32`` enables it, else 0.

    The bound counts whatever CuPy may do, so TF32 is used only where the
    bound accounts for it (a wider interval, never an unsound one).
    """
    return mp.UTF32 if os.environ.get("CUPY_TF32", "0") not in ("", "0") else 0.0




@functools.lru_cache(maxsize=None)
def mixed_kernels():
    """``(median_intervals, finish)``: the device bound of a tile's medians and the refined cdist (built once)."""
    global cuda
    dev = device_functions()
    cuda = runtime.cuda_module()
    interval = cuda.jit(device=True)(mp.sq_interval)
    sq_pair = dev.sq_pair

    @cuda.jit
    def median_intervals(m, a, i0, amax, c, c64, rho, g, abs_sq, abs_eps, lo, hi):
        r = cuda.grid(1)
        if r < m.shape[0]:
            lo_r, hi_r = interval(m[r], a[i0 + r], amax, c, c64, rho, g, abs_sq, abs_eps)
            lo[i0 + r] = lo_r
            hi[i0 + r] = hi_r

    @cuda.jit
    def finish(A, B, G, naA, naB, aA, aB, c, c64, rho, g, abs_sq, abs_eps, rtol, root, out):
        j, i = cuda.grid(2)
        if i < G.shape[0] and j < G.shape[1]:
            dt = (naA[i] + naB[j]) - 2.0 * np.float64(G[i, j])
            lo, hi = interval(dt, aA[i], aB[j], c, c64, rho, g, abs_sq, abs_eps)
            v = dt if hi - lo <= rtol * lo else sq_pair(A, i, B, j, 0)
            out[i, j] = math.sqrt(v) if root else v

    return median_intervals, finish


def centred32(xp, F, shift, chunk=4096):
    """float32 centred rows and their float64 norms², on the device (rows in chunks: no n x d float64 copy)."""
    X = xp.empty(F.shape, dtype=xp.float32)
    na = xp.empty(F.shape[0], dtype=xp.float64)
    for i0 in range(0, F.shape[0], chunk):
        C = F[i0:i0 + chunk].astype(xp.float64) - shift
        X[i0:i0 + chunk] = C.astype(xp.float32)
        X64 = X[i0:i0 + chunk].astype(xp.float64)
        na[i0:i0 + chunk] = (X64 * X64).sum(axis=1)
    return X, na




def host(x):
    """The host copy of an ``xp`` array or a numba device array."""
    return x.get() if hasattr(x, "get") else (fetch(x) if hasattr(x, "copy_to_host") else np.asarray(x))


def sq_pairwise_gemm(reduction, A, B, out_dtype, xp, rtol=mp.CDIST_RTOL):
    """Device ``sq``/``l2`` distances within relative ``rtol`` of float64 (see cpu.sq_pairwise_mixed).

    ``reduction``: a record (or name) the float32 product estimates
    (``gemm``); its ``root`` takes the square root of the sum.
    ``A``, ``B``: featurized device arrays (anything ``xp.asarray`` takes).
    Returns an ``xp`` array, or None when the centred norms are too large for
    a float32 GEMM.
    """
    root = reductions.get(reduction).root
    median_intervals, finish = mixed_kernels()
    A, B = xp.asarray(A), xp.asarray(B)
    d = A.shape[1]
    shift = A.mean(axis=0, dtype=xp.float64) if A.shape[0] else xp.zeros(d)
    XA, naA = centred32(xp, A, shift)
    XB, naB = centred32(xp, B, shift)
    top = max(float(naA.max()) if naA.size else 0.0, float(naB.max()) if naB.size else 0.0)
    if not top < mp.MAX_NORM2:
        return None
    coef = mp.sq_coefficients(d, input_roundoff=gemm_input_roundoff())
    G = XA @ XB.T  # cuBLAS sgemm
    out = G if np.dtype(out_dtype) == np.float32 else xp.empty(G.shape, dtype=out_dtype)
    T = runtime.tile()
    if G.size:
        runtime.launch(finish, (blocks(G.shape[1], T), blocks(G.shape[0], T)), (T, T))(
            A, B, G, naA, naB, mp.norm_upper(naA, d), mp.norm_upper(naB, d), *coef, float(rtol), bool(root), out)
    return out


def sq_min_median_gemm(reduction, F, tile, xp):
    """Device ``min_median`` for ``sq``/``l2``: cuBLAS GEMM, the bound, float64 refinement on the device.

    ``reduction``: a record (or name) the float32 product estimates
    (``gemm``); its ``root`` takes the square root of the medians.

    The same decision as :func:`cs_fast.kernels.cpu.sq_min_median`: per row an
    interval for its canonical lower median (float64 estimates from the float32
    GEMM, an exact device selection, the device-compiled bound); rows whose
    lower end exceeds the smallest upper end cannot win; the rest are
    recomputed with :func:`to_center`'s direct float64 kernel and selected
    exactly (:func:`order_statistic`). The result is brute force over the
    device's own ``to_center`` distances, bit for bit. Only the per-row
    interval ends (2 n floats) and scalars reach the host. Returns
    ``(index, radius, candidates)``, or None when the centred norms are too
    large for a float32 GEMM.
    """
    R = reductions.get(reduction)
    median_intervals, _ = mixed_kernels()
    Fx = xp.asarray(F)
    n, d = Fx.shape
    k = (n + 1) // 2
    X, na = centred32(xp, Fx, Fx.mean(axis=0, dtype=xp.float64))
    if not float(na.max()) < mp.MAX_NORM2:
        return None
    coef = mp.sq_coefficients(d, input_roundoff=gemm_input_roundoff())
    a = mp.norm_upper(na, d)
    amax = float(a.max())
    lo = xp.empty(n, dtype=xp.float64)
    hi = xp.empty(n, dtype=xp.float64)
    tile = max(1, min(n, int(tile)))
    for i0 in range(0, n, tile):
        i1 = min(n, i0 + tile)
        dt = (na[i0:i1, None] + na[None, :]) - 2.0 * (X[i0:i1] @ X.T).astype(xp.float64)
        m = xp.ascontiguousarray(xp.partition(dt, k - 1, axis=1)[:, k - 1])
        runtime.launch(median_intervals, blocks(i1 - i0, 128), 128)(m, a, i0, amax, *coef, lo, hi)
    lo, hi = host(lo), host(hi)
    if R.root:
        lo, hi = np.sqrt(lo), np.sqrt(hi)
    order = np.argsort(lo, kind="stable")
    order = order[: int(np.searchsorted(lo[order], hi.min(), side="right"))]
    best, best_index = np.inf, -1
    for i in order:
        if lo[i] > best:
            break
        m = order_statistic(to_center(R.squared, F, F[i:i + 1], 0), k)
        if R.root:
            m = math.sqrt(m)
        if m < best or (m == best and i < best_index):
            best, best_index = m, int(i)
    return best_index, float(best), len(order)
