"""The device mixed-precision drivers (cuBLAS via CuPy on a GPU) and the device-compiled bound.

Under the simulator the drivers run with ``xp = numpy`` (the GEMM on the host,
the bound and the refinement as simulated device kernels): the same code and
decisions as with CuPy on a GPU, where these tests run a second time with
``xp = cupy``.
"""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

from numba.core import config  # noqa: E402

from cs_fast.kernels import cuda as ck  # noqa: E402
from cs_fast.kernels.cuda import mixed  # noqa: E402
from cs_fast.kernels import mixed_precision as mp  # noqa: E402
from cs_fast.metrics import get_metric  # noqa: E402

XPS = [np]
if not config.ENABLE_CUDASIM:
    try:
        import cupy

        XPS.append(cupy)
    except ImportError:
        pass


def _host(x):
    return mixed.host(x)


def nearby(rng, n, d, dtype=np.float32):
    base = 100.0 + rng.standard_normal(d)
    return np.ascontiguousarray((base + 1e-3 * rng.standard_normal((n, d))).astype(dtype))


def device_brute_force(F, take_sqrt):
    """Index and radius over the device's own canonical rows (to_center's kernel)."""
    n = len(F)
    D = np.stack([_host(ck.to_center("sq", cuda.to_device(F), cuda.to_device(F[i:i + 1]), 0)) for i in range(n)])
    med = np.sort(D, axis=1)[:, (n + 1) // 2 - 1]
    if take_sqrt:
        med = np.sqrt(med)
    i = int(np.argmin(med))
    return i, float(med[i])


@pytest.mark.parametrize("xp", XPS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("n", [1, 2, 5, 8, 13])
@pytest.mark.parametrize("take_sqrt", [False, True])
def test_device_min_median_is_brute_force_bit_for_bit(xp, n, take_sqrt, rng):
    F = nearby(rng, n, 12)
    if n > 4:
        F[3] = F[1]  # a duplicate: ties keep the smaller index
    dF = cuda.to_device(F)
    index, radius, candidates = ck.sq_min_median_gemm("l2" if take_sqrt else "sq", dF if xp is not np else F, 3, xp)
    assert (index, radius) == device_brute_force(F, take_sqrt)
    assert 1 <= candidates <= n


@pytest.mark.parametrize("xp", XPS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("take_sqrt", [False, True])
def test_device_cdist_within_the_stated_accuracy(xp, take_sqrt, rng):
    A = nearby(rng, 6, 20)
    A[4] = A[1]
    ref = get_metric("sqfeat").reference(A, A, {})
    if take_sqrt:
        ref = np.sqrt(ref)
    got = _host(ck.sq_pairwise_gemm("l2" if take_sqrt else "sq", xp.asarray(A), xp.asarray(A), np.float32, xp))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=mp.CDIST_RTOL + 1e-6, atol=0)
    assert got[1, 4] == 0.0 and np.all(np.diag(got) == 0.0)


def test_device_bound_is_the_host_bound(rng):
    median_intervals, _ = mixed.mixed_kernels()
    m = rng.uniform(0.0, 10.0, 7)
    a = rng.uniform(0.0, 3.0, 7)
    coef = mp.sq_coefficients(64, input_roundoff=mp.UTF32)
    lo = np.empty(7)
    hi = np.empty(7)
    median_intervals[1, 8](m, a, 0, 3.0, *coef, lo, hi)
    for r in range(7):
        want = mp.sq_interval(m[r], a[r], 3.0, *coef)
        assert lo[r] == pytest.approx(want[0], rel=1e-15, abs=0) and hi[r] == pytest.approx(want[1], rel=1e-15)
        assert lo[r] <= m[r] <= hi[r]
