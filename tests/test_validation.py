"""Bad input gets a clear error naming the argument, what was received and what was expected."""

import numpy as np
import pytest
import torch

import cs_fast


def identity(batch):
    return batch


@pytest.mark.parametrize("call, match", [
    (lambda: cs_fast.cdist(np.zeros((3, 5)), np.zeros((3, 5)), "jaccard"), r"XA: received an array of shape \(3, 5\).*\(n, 4\)"),
    (lambda: cs_fast.cdist(np.zeros(4), np.zeros((3, 4)), "jaccard"), r"XA: received an array of shape \(4,\)"),
    (lambda: cs_fast.cdist(np.zeros((3, 4)), np.zeros((3, 5)), "l2"), r"XB: received per-sample shape \(5,\).*\(4,\)"),
    (lambda: cs_fast.cdist(np.zeros((2, 3, 4, 5, 6)), np.zeros((2, 3, 4, 5, 6)), "tv"), r"XA: .*'tv' expects"),
    (lambda: cs_fast.cdist(np.zeros((2, 1)), np.zeros((2, 1)), "tv"), r"at least one pair of adjacent"),
    (lambda: cs_fast.cdist(np.zeros((2, 3)), np.zeros((2, 3)), "jaccard_mask"), r"XA: received dtype float64.*boolean"),
    (lambda: cs_fast.cdist(np.zeros((2, 3)), np.zeros((2, 3)), "hamming"), r"metric: received 'hamming'; expected one of: angular|metric: received 'hamming'"),
    (lambda: cs_fast.cdist(np.zeros((2, 3)), np.zeros((2, 3)), "l2", channel_norm=2), r"unknown parameter"),
    (lambda: cs_fast.cdist(np.zeros((2, 2, 3)), np.zeros((2, 2, 3)), "tv", channel_norm=3), r"channel_norm: received 3"),
    (lambda: cs_fast.cdist(np.zeros((2, 3)), np.zeros((2, 3)), "sqfeat", weights=[1, -1, 1]), r"weights: received 1 negative"),
    (lambda: cs_fast.cdist(np.zeros((2, 3)), np.zeros((2, 3)), "sqfeat", weights=[1, 1]), r"weights: received \(2,\).*3 in all"),
    (lambda: cs_fast.cdist(np.zeros((2, 3)), np.zeros((2, 3)), "angular"), r"XA: 2 of 2 rows are all zero"),
    (lambda: cs_fast.cdist(np.zeros((2, 3), complex), np.zeros((2, 3)), "l2"), r"XA: received dtype complex128"),
    (lambda: cs_fast.cdist("abc", np.zeros((2, 3)), "l2"), r"XA: received str"),
    (lambda: cs_fast.cdist(np.zeros((2, 3)), np.zeros((2, 3)), "l2", backend="gpu"), r"backend: received 'gpu'"),
    (lambda: cs_fast.to_center(np.zeros((4, 3)), np.zeros(4), "l2"), r"center: received shape \(4,\); expected .*\(3,\)"),
    (lambda: cs_fast.min_median(np.zeros((0, 3)), "l2"), r"Z: received 0 samples"),
    (lambda: cs_fast.min_median(np.zeros((4, 3)), "l2", tile=0), r"tile: received 0"),
])
def test_distance_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_nan_and_inf_rows_are_counted():
    X = np.zeros((5, 4))
    X[1, 0] = np.nan
    X[3, 2] = np.inf
    with pytest.raises(ValueError, match=r"XA: 2 of 5 rows contain NaN or inf \(first at row 1\)"):
        cs_fast.cdist(X, X, "l2")
    boxes = np.array([[0, 0, 1, np.nan]])
    with pytest.raises(ValueError, match="NaN or inf"):
        cs_fast.min_median(boxes, "jaccard")


def _gpu_present():
    from cs_fast.bindings.cuda_backend import cuda_problem

    return cuda_problem() is None


@pytest.mark.skipif(_gpu_present(), reason="a GPU is present: backend='cuda' works here")
def test_cuda_backend_without_gpu_says_what_is_missing():
    with pytest.raises(RuntimeError, match=r"backend='cuda' is not usable here: .*(numba-cuda|GPU|driver)"):
        cs_fast.cdist(np.zeros((2, 3)), np.zeros((2, 3)), "l2", backend="cuda")


@pytest.mark.parametrize("kwargs, match", [
    (dict(sigma=0.0), r"sigma: received 0.0; expected a value > 0"),
    (dict(sigma=-1.0), r"sigma: received -1.0"),
    (dict(metric="nope"), r"metric: received 'nope'"),
    (dict(batch_size=0), r"batch_size: received 0"),
    (dict(seed=-3), r"seed: received -3"),
    (dict(seed=1.5), r"seed: received 1.5"),
    (dict(candidates=0), r"candidates: received 0"),
    (dict(backend="tpu"), r"backend: received 'tpu'"),
    (dict(model=42), r"model: received int"),
    (dict(metric_params={"weights": [1.0]}, metric="l2"), r"unknown parameter"),
])
def test_constructor_errors(kwargs, match):
    args = dict(model=identity, metric="l2", sigma=0.5)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        cs_fast.CenterSmoothing(args.pop("model"), args.pop("metric"), args.pop("sigma"), **args)


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps1=-0.1), r"eps1: received -0.1; expected a value >= 0"),
    (dict(alpha1=0.0), r"alpha1: received 0.0; expected a value in the open interval \(0.0, 1.0\)"),
    (dict(alpha2=1.0), r"alpha2: received 1.0"),
    (dict(delta=0.5), r"delta: received 0.5; expected a value in the open interval \(0.0, 0.5\)"),
    (dict(delta=0.0), r"delta: received 0.0"),
    (dict(n=0), r"n: received 0; expected an integer >= 1"),
    (dict(m=0), r"m: received 0; expected an integer >= 1"),
    (dict(n=10.5), r"n: received 10.5"),
])
def test_certify_argument_errors(kwargs, match):
    sm = cs_fast.CenterSmoothing(identity, "l2", 0.5, seed=0)
    args = dict(eps1=0.1, n=10, m=10)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        sm.certify(np.zeros(3), **args)


def test_model_returning_wrong_batch_length():
    sm = cs_fast.CenterSmoothing(lambda b: b[:-1], "l2", 0.5, seed=0, batch_size=8)
    with pytest.raises(ValueError, match=r"model output: received shape \(7, 3\) for a batch of 8 inputs"):
        sm.smooth(np.zeros(3), n=8)


def test_model_returning_nan_rows():
    def model(b):
        out = b.copy()
        out[::2] = np.nan
        return out

    sm = cs_fast.CenterSmoothing(model, "l2", 0.5, seed=0, batch_size=10)
    with pytest.raises(ValueError, match=r"model output: 5 of 10 rows contain NaN or inf"):
        sm.smooth(np.zeros(3), n=10)


def test_model_output_in_wrong_layout():
    sm = cs_fast.CenterSmoothing(identity, "jaccard", 0.5, seed=0)
    with pytest.raises(ValueError, match=r"shape \(10, 3\).*\(n, 4\)"):
        sm.smooth(np.zeros(3), n=10)


def test_bad_input_x():
    sm = cs_fast.CenterSmoothing(identity, "l2", 0.5, seed=0)
    with pytest.raises(ValueError, match=r"x: received 1 NaN or inf"):
        sm.smooth(np.array([0.0, np.nan]), n=4)
    with pytest.raises(TypeError, match=r"x: received .*int64"):
        sm.smooth(np.array([1, 2]), n=4)
    with pytest.raises(TypeError, match=r"x: received .*torch.int64|x: received Tensor"):
        sm.smooth(torch.tensor([1, 2]), n=4)
