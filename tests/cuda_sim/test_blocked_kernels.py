"""The register-blocked long-sum kernels (cs_fast.kernels.cuda.blocked) against float64 references.

Under the simulator the blocks are 4 x 4 threads with 2 x 2 outputs each (8 x 8
output tiles) staging 4 features a step, so the sizes below cross tile edges in
both dimensions and in the features (d not a multiple of the step, d = 1,
n = 1); one test per mode runs the production configuration (16 x 16 threads,
4 x 4 outputs, 16 features a step).

* narrow mode (float32 in and out): every entry within the derived relative
  bound of ``blocked.bound``; an adversarial input reaches more than the
  bound of half the flush length (so a bound or flush that were too small
  fails), and without flushes the error exceeds the bound;
* wide mode (float64 sums): float64 accuracy; what min_median and the pruned
  center select from: an entry is the same float whatever tile or gathered row
  order it is computed in;
* edge tiles: integer-valued inputs make every sum exact in both modes, so a
  mis-indexed row, column or feature, or a write outside ``out``, shows as a
  wrong value or a changed sentinel.
"""

import numpy as np
import pytest

cuda = pytest.importorskip("numba.cuda")

from cs_fast.kernels import cuda as ck  # noqa: E402
from cs_fast.kernels.cuda import blocked as cb  # noqa: E402
from cs_fast.kernels.cuda import direct  # noqa: E402
from cs_fast.kernels.cuda import prune as cuda_prune  # noqa: E402

from numba.core import config  # noqa: E402

SIMULATED = bool(config.ENABLE_CUDASIM)
U = 2.0 ** -24
REDUCTIONS = ("l1", "sq", "l2")
# (na, nb, d): ragged in rows, columns and features against 8 x 8 tiles and 4-feature steps
SHAPES = [(9, 17, 13), (1, 1, 1), (1, 10, 5), (8, 8, 4), (17, 3, 1), (3, 9, 37)]


@pytest.fixture
def production():
    """The GPU's block sizes (kernels built with them)."""
    with ck.block_sizes(small=False):
        yield


def exact(reduction, A, B):
    """float64 reference of the exact inputs (float32 values are exact in float64)."""
    diff = A.astype(np.float64)[:, None] - B.astype(np.float64)[None]
    if reduction == "l1":
        return np.abs(diff).sum(2)
    s = (diff * diff).sum(2)
    return np.sqrt(s) if reduction == "l2" else s


def run(reduction, A, B, wide, out_dtype=None, flush=cb.FLUSH):
    out_dtype = out_dtype or (np.float64 if wide else np.float32)
    out = cuda.device_array((A.shape[0], B.shape[0]), dtype=out_dtype)
    cb.launch(reduction, cuda.to_device(A), cuda.to_device(B), out, wide, flush)
    return out.copy_to_host()


def within_bound(reduction, got, ref, d, flush=cb.FLUSH):
    """|got - ref| <= bound ref + d TINY32 everywhere; returns the largest error in units of the bound."""
    slack = cb.bound(reduction, flush) * ref + d * cb.TINY32
    err = np.abs(got.astype(np.float64) - ref)
    return bool(np.all(err <= slack)), float(np.max(err / slack))


# --------------------------------------------------------------------------- the bound's arithmetic


def test_bound_values_and_argument_check():
    assert cb.FLUSH == 32
    assert cb.bound("l1") == 34 * U and cb.bound("sq") == 36 * U and cb.bound("l2") == 19 * U
    assert cb.bound("l1", 16) == 18 * U
    assert max(cb.bound(r) for r in REDUCTIONS) < 2.0 ** -10  # the float32 cdist/pdist promise
    with pytest.raises(ValueError, match="reduction: received 'box'"):
        cb.bound("box")
    with pytest.raises(ValueError, match="reduction: received"):
        cb.kernel("angular", True)


# --------------------------------------------------------------------------- parity, both modes


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_narrow_mode_is_within_its_bound(reduction, shape, rng):
    na, nb, d = shape
    A = rng.standard_normal((na, d)).astype(np.float32)
    B = rng.standard_normal((nb, d)).astype(np.float32)
    B[0] = A[0]  # a zero distance
    got = run(reduction, A, B, wide=False)
    assert got.dtype == np.float32 and got.shape == (na, nb)
    ok, worst = within_bound(reduction, got, exact(reduction, A, B), d)
    assert ok, worst
    assert got[0, 0] == 0.0


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_wide_mode_has_float64_accuracy(reduction, shape, dtype, rng):
    na, nb, d = shape
    A = (rng.standard_normal((na, d)) * 3).astype(dtype)
    B = (rng.standard_normal((nb, d)) * 3).astype(dtype)
    A[-1] = B[-1]
    got = run(reduction, A, B, wide=True)
    ref = exact(reduction, A, B)
    # two-level float64 sum: (FLUSH + d / FLUSH + 3) float64 roundings at most, d <= 37 here
    np.testing.assert_allclose(got, ref, rtol=40 * 2.0 ** -53, atol=0)
    assert got[-1, -1] == 0.0


def test_wide_mode_float32_output_is_the_rounded_float64_sum(rng):
    """float64 inputs, float32 output: float64 sums rounded once (what pairwise gets for float64 data)."""
    A = rng.standard_normal((5, 11))
    B = rng.standard_normal((10, 11))
    got = run("l1", A, B, wide=True, out_dtype=np.float32)
    np.testing.assert_array_equal(got, run("l1", A, B, wide=True).astype(np.float32))


def test_narrow_mode_needs_float32_inputs():
    with pytest.raises(TypeError, match="A: received dtype float64"):
        cb.launch("l1", cuda.to_device(np.zeros((2, 3))), cuda.to_device(np.zeros((2, 3))),
                  cuda.device_array((2, 2), dtype=np.float32), wide=False)


# --------------------------------------------------------------------------- the bound is needed


def _half_ulp_terms(reduction, d=200):
    """One term of 1, then d - 1 terms of exactly half an ulp of 1 in float32 (2**-24).

    A float32 running sum never moves off 1.0 (ties round to even), so the
    first flushed chunk loses its F - 1 small terms: (F - 1) u = 31 u of
    relative error, later chunks of small terms sum exactly.
    """
    a = np.zeros((1, d), dtype=np.float32)
    b = np.zeros((1, d), dtype=np.float32)
    a[0, 0] = 1.0
    a[0, 1:] = 2.0 ** -24 if reduction == "l1" else 2.0 ** -12  # (2**-12)**2 = 2**-24
    return a, b


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_narrow_bound_is_reached_within_a_factor_of_two(reduction):
    a, b = _half_ulp_terms(reduction)
    got = run(reduction, a, b, wide=False)
    ref = exact(reduction, a, b)
    ok, worst = within_bound(reduction, got, ref, a.shape[1])
    assert ok, worst
    # ... and more than the bound of half the flush length: a bound too small, or chunks longer
    # than FLUSH, would fail here.
    ok_half, _ = within_bound(reduction, got, ref, a.shape[1], flush=cb.FLUSH // 2)
    assert not ok_half
    # The float64 sums lose nothing here.
    wide = run(reduction, a, b, wide=True)
    np.testing.assert_allclose(wide, ref, rtol=1e-15)


@pytest.mark.parametrize("reduction", ["l1", "sq"])
def test_narrow_mode_without_flushes_breaks_the_bound(reduction):
    """The flush is what holds the bound: summed in float32 throughout, the small terms vanish."""
    a, b = _half_ulp_terms(reduction)
    got = run(reduction, a, b, wide=False, flush=2 ** 30)
    ok, worst = within_bound(reduction, got, exact(reduction, a, b), a.shape[1], flush=32)
    assert not ok and worst > 5, worst  # 199 u lost against 34 u (36 u) allowed


def test_flush_must_be_a_multiple_of_the_step():
    with pytest.raises(ValueError, match="flush: received"):
        cb.kernel("l1", False, flush=cb.block_shape()[2] + 1)


# --------------------------------------------------------------------------- edge tiles, exactly


@pytest.mark.parametrize("wide", [False, True])
@pytest.mark.parametrize("reduction", ["l1", "sq"])
def test_edge_tiles_are_indexed_exactly(reduction, wide, rng):
    """Small integers: every sum is exact in float32 and float64, so the result must equal the reference.

    Rows differ from each other and features from each other, so a shifted
    row, column or feature (or a feature counted twice or dropped at a tile
    edge) changes some entry; the output is a view into a larger sentinel
    array, so a store outside the (na, nb) window shows too.
    """
    dtype = np.float64 if wide else np.float32
    for na, nb, d in [(9, 17, 13), (17, 9, 6), (1, 8, 9), (8, 1, 1)]:
        A = rng.integers(-7, 8, size=(na, d)).astype(dtype)
        B = rng.integers(-7, 8, size=(nb, d)).astype(dtype)
        big = np.full((na + 5, nb + 7), -1.0, dtype=dtype)
        dbig = cuda.to_device(big)
        cb.launch(reduction, cuda.to_device(A), cuda.to_device(B), dbig[2:2 + na, 3:3 + nb], wide)
        got = dbig.copy_to_host()
        np.testing.assert_array_equal(got[2:2 + na, 3:3 + nb], exact(reduction, A, B).astype(dtype))
        inner = np.zeros(big.shape, dtype=bool)
        inner[2:2 + na, 3:3 + nb] = True
        assert np.all(got[~inner] == -1.0), "a store outside out"


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_an_entry_does_not_depend_on_its_tile(reduction, rng):
    """What min_median and the pruned center rely on: any row subset/order gives the same floats."""
    F = rng.standard_normal((13, 45)).astype(np.float32)  # more than FLUSH features: chunks matter
    dF = cuda.to_device(F)
    full = ck.pairwise(reduction, dF, dF, 0, np.float64).copy_to_host()
    rows = np.array([12, 3, 7, 0, 9])
    part = cuda.device_array((len(rows), 13))
    direct.launch_pairwise(reduction, cuda.to_device(F[rows]), dF, 0, part)
    np.testing.assert_array_equal(part.copy_to_host(), full[rows])
    np.testing.assert_array_equal(np.diag(full), 0.0)


# --------------------------------------------------------------------------- routing


def test_pairwise_routes_float32_to_narrow_and_float64_to_wide(rng):
    a, b = _half_ulp_terms("l1")
    da, db = cuda.to_device(a), cuda.to_device(b)
    ref = exact("l1", a, b)[0, 0]
    narrow = float(ck.pairwise("l1", da, db, 0, np.float32).copy_to_host()[0, 0])
    wide = float(ck.pairwise("l1", da, db, 0, np.float64).copy_to_host()[0, 0])
    assert narrow == 1.0 + 168 * U  # the first chunk's 31 small terms lost: float32 sums
    assert wide == ref  # float64 sums
    out = cuda.device_array((1, 1), dtype=np.float32)
    assert ck.pairwise("sq", da, db, 0, np.float32, out=out) is out


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_min_median_and_pruned_agree_with_brute_force_on_blocked_tiles(reduction, rng):
    F = rng.standard_normal((19, 6)).astype(np.float32)
    F[4] = F[11]  # a tie
    dF = cuda.to_device(F)
    D = ck.pairwise(reduction, dF, dF, 0, np.float64).copy_to_host()
    k = (len(F) + 1) // 2
    med = np.sort(D, axis=1)[:, k - 1]
    want = (int(np.argmin(med)), float(med.min()))
    assert ck.min_median(reduction, dF, 0, tile=5) == want
    assert cuda_prune.min_median(reduction, dF, 0, tile=5, root=reduction == "sq") == want


# --------------------------------------------------------------------------- production sizes


@pytest.mark.slow
@pytest.mark.parametrize("wide, reduction", [(False, "l1"), (False, "sq"), (True, "l2")])
def test_production_configuration(production, wide, reduction):
    """16 x 16 threads, 4 x 4 outputs, 16 features a step: ragged 64-row tiles, 3 steps, one flush."""
    if not SIMULATED:
        pytest.skip("already the production configuration on a GPU")
    assert cb.block_shape() == (cb.BLK_T, cb.BLK_R, cb.BLK_K)
    rng = np.random.default_rng(15)
    dtype = np.float64 if wide else np.float32
    A = rng.standard_normal((65, 35)).astype(dtype)  # two row tiles (64 + 1), a ragged column tile
    B = rng.standard_normal((30, 35)).astype(dtype)
    got = run(reduction, A, B, wide)
    ref = exact(reduction, A, B)
    if wide:
        np.testing.assert_allclose(got, ref, rtol=40 * 2.0 ** -53)
    else:
        ok, worst = within_bound(reduction, got, ref, A.shape[1])
        assert ok, worst
    if reduction == "l1":  # exact integer sums: edge indexing at full size, across the column edge too
        Ai = rng.integers(-7, 8, size=(30, 35)).astype(dtype)
        Bi = rng.integers(-7, 8, size=(66, 35)).astype(dtype)
        np.testing.assert_array_equal(run("l1", Ai, Bi, wide), exact("l1", Ai, Bi).astype(dtype))
