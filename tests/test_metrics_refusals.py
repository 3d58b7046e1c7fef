"""Names and dtypes whose usual meaning cs_fast does not compute are refused, never coerced."""

import numpy as np
import pytest

import cs_fast


@pytest.mark.parametrize("call", [
    lambda X: cs_fast.cdist(X, X, "jaccard"),
    lambda X: cs_fast.pdist(X, "iou"),
    lambda X: cs_fast.min_median(X, "jaccard"),
    lambda X: cs_fast.to_center(X, X[0], "jaccard"),
    lambda X: cs_fast.paired(X, X, "box"),
])
def test_boolean_vectors_under_jaccard_name_jaccard_mask(call):
    X = np.array([[1, 0, 1, 1], [1, 1, 0, 1], [0, 0, 1, 1]], dtype=bool)
    with pytest.raises(TypeError, match=r"boolean array of shape \(3, 4\).*use metric 'jaccard_mask'"):
        call(X)


def test_jaccard_mask_is_scipys_jaccard_on_boolean_vectors():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(3)
    X = rng.random((20, 9)) < 0.4
    np.testing.assert_allclose(cs_fast.cdist(X, X, "jaccard_mask"), cdist(X, X, "jaccard"), rtol=0, atol=1e-15)


def test_integer_boxes_are_still_boxes():
    X = np.array([[0, 0, 2, 2], [1, 1, 3, 3]])
    assert cs_fast.cdist(X, X, "jaccard")[0, 1] == pytest.approx(1 - 1 / 7)


@pytest.mark.parametrize("name,why", [
    ("lpips", "features of a perceptual network.*'sqfeat'"),
    ("LPIPS", "features of a perceptual network"),
    ("cosine", "triangle inequality.*'angular'"),
])
def test_names_with_another_meaning_are_refused_with_the_reason(name, why):
    X = np.random.default_rng(0).random((4, 3))
    with pytest.raises(ValueError, match=f"metric: received {name!r}; .*{why}"):
        cs_fast.cdist(X, X, name)
    with pytest.raises(ValueError, match=why):
        cs_fast.CenterSmoothing(lambda x: x, name, sigma=0.1)


def test_every_alias_names_the_same_quantity_as_its_scipy_namesake():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(1)
    X = rng.random((6, 5))
    for alias, scipy_name in [("euclidean", "euclidean"), ("cityblock", "cityblock"),
                              ("manhattan", "cityblock"), ("sqeuclidean", "sqeuclidean")]:
        np.testing.assert_allclose(cs_fast.cdist(X, X, alias), cdist(X, X, scipy_name), rtol=1e-12, atol=1e-15)
    aliases = {a for name in cs_fast.available_metrics() for a in cs_fast.get_metric(name).aliases}
    assert not aliases & {"lpips", "cosine", "hamming", "correlation"}


@pytest.mark.parametrize("metric", ["l2", "jaccard", "tv", "angular"])
def test_integers_float64_would_round_are_refused(metric):
    X = np.zeros((3, 4), dtype=np.int64) + np.array([0, 0, 2, 2])
    X[1, 2] = 2**53 + 1  # float64(2**53 + 1) == 2**53: the distance would be of another input
    with pytest.raises(ValueError, match=r"XA: received int64 values up to 9007199254740993 .*2\*\*53"):
        cs_fast.cdist(X, X, metric)
    X[1, 2] = 2**53  # exact in float64: accepted
    assert cs_fast.cdist(X, X, metric).shape == (3, 3)
    U = X.astype(np.uint64)
    U[1, 2] = 2**64 - 1
    with pytest.raises(ValueError, match="uint64 values up to 18446744073709551615"):
        cs_fast.pdist(U, metric)
