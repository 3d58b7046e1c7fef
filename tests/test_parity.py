"""Every kernel entry point against the float64 reference, for every metric and dtype."""

import numpy as np
import pytest
import scipy.spatial.distance as ssd
import torch

import cs_fast
from cs_fast.metrics import get_metric
from conftest import make_samples, resolve_params
from large_reference import LARGE_CASES, SIZES, abs_tolerance, large_case_id, reference_rows, row_blocks, samples

DTYPES = [np.float64, np.float32]


def tolerance(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cdist_matches_reference(case, dtype, rng):
    metric, params, shape = case
    params = resolve_params(params, shape, rng)
    XA = make_samples(metric, rng, 13, dtype, shape)
    XB = make_samples(metric, rng, 9, dtype, shape)
    D = cs_fast.cdist(XA, XB, metric, **params)
    ref = get_metric(metric).reference(XA, XB, params)
    assert D.shape == (13, 9)
    expected_dtype = np.float32 if XA.dtype == np.float32 else np.float64
    assert D.dtype == expected_dtype
    np.testing.assert_allclose(D, ref, **tolerance(D.dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_pdist_is_upper_triangle_of_cdist(case, dtype, rng):
    metric, params, shape = case
    params = resolve_params(params, shape, rng)
    X = make_samples(metric, rng, 11, dtype, shape)
    condensed = cs_fast.pdist(X, metric, **params)
    assert condensed.shape == (11 * 10 // 2,)
    ref = get_metric(metric).reference(X, X, params)
    np.testing.assert_allclose(ssd.squareform(condensed, checks=False), ref - np.diag(np.diag(ref)),
                               **tolerance(condensed.dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_to_center_matches_reference(case, dtype, rng):
    metric, params, shape = case
    params = resolve_params(params, shape, rng)
    Z = make_samples(metric, rng, 17, dtype, shape)
    d = cs_fast.to_center(Z, Z[5], metric, **params)
    ref = get_metric(metric).reference(Z, Z[5:6], params)[:, 0]
    np.testing.assert_allclose(d, ref, **tolerance(d.dtype))
    assert d[5] == pytest.approx(0.0, abs=1e-6)


SCIPY_NAMES = {"l2": "euclidean", "l1": "cityblock", "sqfeat": "sqeuclidean"}


@pytest.mark.parametrize("metric", sorted(SCIPY_NAMES))
def test_cdist_matches_scipy(metric, rng):
    XA = rng.standard_normal((20, 16))
    XB = rng.standard_normal((15, 16))
    np.testing.assert_allclose(cs_fast.cdist(XA, XB, metric), ssd.cdist(XA, XB, SCIPY_NAMES[metric]), rtol=1e-10)
    np.testing.assert_allclose(cs_fast.pdist(XA, metric), ssd.pdist(XA, SCIPY_NAMES[metric]), rtol=1e-10)


def test_weighted_sqfeat_matches_scipy(rng):
    XA, XB = rng.standard_normal((8, 6)), rng.standard_normal((5, 6))
    w = rng.uniform(0, 3, 6)
    np.testing.assert_allclose(cs_fast.cdist(XA, XB, "sqfeat", weights=w),
                               ssd.cdist(XA, XB, "sqeuclidean", w=w), rtol=1e-10)


def test_jaccard_mask_matches_scipy_on_nonempty_masks(rng):
    masks = rng.random((12, 40)) < 0.4
    masks[:, 0] = True  # scipy's jaccard differs from ours only on two empty sets
    np.testing.assert_allclose(cs_fast.cdist(masks, masks, "jaccard_mask"), ssd.cdist(masks, masks, "jaccard"))


def test_tv_is_l1_of_finite_differences(rng):
    """TV(I1 - I2) equals cityblock on the finite-difference features (the fast path's identity)."""
    imgs = rng.standard_normal((10, 3, 8, 8))
    feats = cs_fast.metrics.tv_differences(imgs).reshape(10, -1)
    np.testing.assert_allclose(cs_fast.cdist(imgs, imgs, "tv"), ssd.cdist(feats, feats, "cityblock"), rtol=1e-10)


def test_sqfeat_float32_guard_against_cancellation(rng):
    """Nearby float32 samples far from the origin: the GEMM form would cancel, the guard must not."""
    base = rng.standard_normal(4096).astype(np.float32) * 100 + 1000
    X = (base + rng.standard_normal((40, 4096)).astype(np.float32) * 1e-2).astype(np.float32)
    D = cs_fast.cdist(X, X, "sqfeat")
    ref = get_metric("sqfeat").reference(X, X, {})
    off = ~np.eye(40, dtype=bool)
    np.testing.assert_allclose(D[off], ref[off], rtol=1e-5)


def test_long_l1_rows_float32_within_1e5(rng):
    """The blocked kernel's float32 chunk sums stay within 1e-5 of float64 over long rows."""
    X = rng.random((9, 3 * 32 * 32), dtype=np.float32)
    np.testing.assert_allclose(cs_fast.cdist(X, X[:5], "l1"), get_metric("l1").reference(X, X[:5], {}), rtol=1e-5)


def test_torch_in_torch_out(rng):
    X = torch.from_numpy(rng.standard_normal((7, 5)).astype(np.float32))
    D = cs_fast.cdist(X, X, "l2")
    assert isinstance(D, torch.Tensor) and D.dtype == torch.float32
    np.testing.assert_allclose(D.numpy(), ssd.cdist(X.numpy(), X.numpy()), rtol=1e-5, atol=1e-6)
    assert isinstance(cs_fast.pdist(X, "l1"), torch.Tensor)
    assert isinstance(cs_fast.to_center(X, X[0], "l1"), torch.Tensor)


def test_integer_boxes_widen_to_float64():
    boxes = np.array([[0, 0, 2, 2], [1, 1, 3, 3]])
    D = cs_fast.cdist(boxes, boxes, "jaccard")
    assert D.dtype == np.float64
    assert D[0, 1] == pytest.approx(1 - 1 / 7)


def test_empty_box_semantics():
    boxes = np.array([[0, 0, 0, 5], [3, 3, 2, 9], [0, 0, 1, 1.0]])  # zero width, negative width, unit box
    D = cs_fast.cdist(boxes, boxes, "jaccard")
    np.testing.assert_array_equal(D, [[0, 0, 1], [0, 0, 1], [1, 1, 0]])


def test_large_tile_free_cdist_sizes(rng):
    """Odd sizes exercise the 2 x 4 register block's edges."""
    for na, nb in [(1, 1), (3, 5), (4, 2), (2, 4), (7, 9), (8, 8), (5, 3)]:
        XA, XB = rng.standard_normal((na, 700)), rng.standard_normal((nb, 700))
        np.testing.assert_allclose(cs_fast.cdist(XA, XB, "l1"), ssd.cdist(XA, XB, "cityblock"), rtol=1e-10)


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (4, 6, 7), (4, 9), (4, 2, 1, 5), (4, 1, 5, 1)])
@pytest.mark.parametrize("channel_norm", [1, 2])
def test_tv_estimate_kernel_matches_numpy_transform(shape, channel_norm, rng):
    """The estimate features: neighbour differences of the centred samples, in float64, stored as float32."""
    X = (100.0 + rng.standard_normal(shape)).astype(np.float32)
    centre = X[1].astype(np.float64)
    est = get_metric("tv").estimate(X, {"channel_norm": channel_norm}, centre)
    diffs = cs_fast.metrics.tv_differences(X.astype(np.float64) - centre).astype(np.float32)  # (n, C, P)
    if channel_norm == 2 and diffs.shape[1] > 1:
        expected = diffs.transpose(0, 2, 1).reshape(len(X), -1)
        assert (est.reduction.name, est.arg) == ("grouped_l2", diffs.shape[2])
    else:
        expected = diffs.reshape(len(X), -1)
        assert (est.reduction.name, est.arg) == ("l1", 0)
    np.testing.assert_array_equal(est.data, expected)
    assert not est.data[1].any()  # the centre's own features are zero


def test_tv_canonical_features_are_the_images(rng):
    X = rng.standard_normal((4, 3, 5, 6)).astype(np.float32)
    F = get_metric("tv").featurize(X, {})
    np.testing.assert_array_equal(F.data, X.reshape(4, -1))
    assert (F.reduction.name, F.arg) == ("tv", (5 << 32) | 6)
    assert get_metric("tv").featurize(X, {"channel_norm": 2}).reduction.name == "tv2"


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("ci", range(len(LARGE_CASES)), ids=[large_case_id(c) for c in LARGE_CASES])
def test_pdist_matches_brute_force_across_tile_boundaries(ci, n):
    """pdist past its row tiles (256) and the kernels' blocks, every metric, against float64 brute force."""
    metric, params, shape = LARGE_CASES[ci]
    X, params = samples(metric, params, shape, n)
    condensed = cs_fast.pdist(X, metric, **params)
    assert condensed.shape == (n * (n - 1) // 2,) and condensed.dtype == np.float64
    for i0, D in row_blocks(metric, params, X):
        for r, i in enumerate(range(i0, i0 + len(D))):
            start = i * n - i * (i + 1) // 2
            np.testing.assert_allclose(condensed[start:start + n - i - 1], D[r, i + 1:], rtol=1e-10,
                                       atol=abs_tolerance(metric, 1e-10), err_msg=f"row {i}")
    # The vectorized reference is the pair-by-pair definition (Metric.reference) on a middle row.
    row = get_metric(metric).reference(X[n // 2:n // 2 + 1], X, params)[0]
    np.testing.assert_allclose(reference_rows(metric, params, X[n // 2:n // 2 + 1], X)[0], row, rtol=1e-12,
                               atol=abs_tolerance(metric, 1e-14))
