"""Zero rows in, scipy's shapes out: every distance entry point with empty inputs, every metric layout."""

import numpy as np
import pytest
import scipy.spatial.distance as ssd
import torch

from conftest import make_samples, resolve_params

import cs_fast

DTYPES = [np.float64, np.float32]


def _pair(case, rng, dtype, na, nb):
    metric, params, shape = case
    X = make_samples(metric, rng, max(na, nb, 2), dtype=dtype, shape=shape)
    return metric, resolve_params(params, shape, rng), X[:na], X[:nb]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("na, nb", [(0, 3), (3, 0), (0, 0)])
def test_cdist_with_zero_rows_has_scipys_shape(case, rng, dtype, na, nb):
    metric, params, A, B = _pair(case, rng, dtype, na, nb)
    D = cs_fast.cdist(A, B, metric, **params)
    assert D.shape == ssd.cdist(np.zeros((na, 2)), np.zeros((nb, 2))).shape == (na, nb)
    assert D.dtype == (np.float32 if A.dtype == np.float32 else np.float64)


@pytest.mark.parametrize("n", [0, 1])
def test_pdist_of_fewer_than_two_samples_is_empty(case, rng, n):
    metric, params, A, _ = _pair(case, rng, np.float64, n, 0)
    d = cs_fast.pdist(A, metric, **params)
    assert d.shape == ssd.pdist(np.zeros((n, 2))).shape == (0,)


def test_to_center_and_paired_of_zero_samples_are_empty(case, rng):
    metric, params, A, C = _pair(case, rng, np.float64, 0, 1)
    assert cs_fast.to_center(A, C[0], metric, **params).shape == (0,)
    assert cs_fast.paired(A, A, metric, **params).shape == (0,)


def test_torch_in_torch_out_when_empty():
    A = torch.zeros((0, 4))
    D = cs_fast.cdist(A, torch.ones((3, 4)), "l2")
    assert isinstance(D, torch.Tensor) and D.shape == (0, 3)
    d = cs_fast.to_center(A, torch.ones(4), "l1")
    assert isinstance(d, torch.Tensor) and d.shape == (0,)


def test_empty_inputs_are_still_validated():
    # a zero-row input with the wrong per-sample shape is still an error naming the argument
    with pytest.raises(ValueError, match="XB"):
        cs_fast.cdist(np.zeros((0, 3)), np.zeros((2, 4)), "l2")
    with pytest.raises(ValueError, match="center"):
        cs_fast.to_center(np.zeros((0, 3)), np.zeros(4), "l2")
    with pytest.raises(ValueError, match="XB"):
        cs_fast.paired(np.zeros((0, 3)), np.zeros((1, 3)), "l2")


def test_min_median_of_zero_samples_names_the_argument(case, rng):
    metric, params, A, _ = _pair(case, rng, np.float64, 0, 0)
    with pytest.raises(ValueError, match=r"^Z: received 0 samples"):
        cs_fast.min_median(A, metric, **params)
