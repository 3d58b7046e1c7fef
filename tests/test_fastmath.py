"""The kernels use fastmath for reassociation only: NaN and inf must still propagate.

The front doors reject non-finite input, so these call the kernels directly:
a kernel compiled with nnan/ninf would be free to return finite garbage here.
"""

import numpy as np
import pytest

from cs_fast.kernels.cpu import distances


def non_finite(values):
    return (~np.isfinite(values)).all()


# angular with inf is left out: atan2(inf, inf) = pi/4 is IEEE's own answer, not a fastmath effect.
CASES = [(r, b) for r in ["l1", "sq", "l2", "angular", "grouped_l2"] for b in (np.nan, np.inf)
         if not (r == "angular" and b == np.inf)]


@pytest.mark.parametrize("reduction, bad", CASES)
@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_non_finite_values_propagate(reduction, bad):
    A = np.ones((5, 64))
    B = np.zeros((6, 64))
    B[:, ::2] = 1.0  # no zero row: the zero vector has no angle
    A[2, 17] = bad
    arg = 8 if reduction == "grouped_l2" else 0
    D = distances.pairwise(reduction, A, B, arg, np.float64)
    assert non_finite(D[2])
    if reduction not in ("sq", "l2"):  # the GEMM path centres by the column mean, which spreads NaN
        assert np.isfinite(np.delete(D, 2, axis=0)).all()
    d = distances.to_center(reduction, A, B[:1], arg)
    assert non_finite(d[2]) and np.isfinite(np.delete(d, 2)).all()


def test_blocked_l1_float32_propagates_nan():
    A = np.ones((8, 1030), np.float32)
    A[3, 1029] = np.nan
    D = distances.pairwise("l1", A, A[:5], 0, np.float32)
    assert np.isnan(D[3]).all() and np.isnan(D[:, 3]).all()
