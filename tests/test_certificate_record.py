"""Self-describing results: recorded settings and seeds, JSON round trips, vacuity, Smooth-HD's candidates rule."""

import dataclasses
import json

import numpy as np
import pytest
import torch

import cs_fast
from cs_fast import Certificate, SmoothResult, _serialize
from cs_fast.smoothing import check_candidates


def box_model(batch):
    """A 2x2 box centred at the 2-D input (torch in, torch out)."""
    return torch.cat([batch - 1.0, batch + 1.0], dim=1)


def mask_model(batch):
    """A boolean 3x3 mask of the input's positive entries (torch in, torch out)."""
    return (batch.reshape(-1, 3, 3) > 0)


SMALL = dict(n=400, m=800, alpha1=0.05, alpha2=0.05, delta=0.2)


def _json_round_trip(result):
    return type(result).from_dict(json.loads(json.dumps(result.to_dict())))


def test_certificate_extends_smooth_result_and_records_its_settings():
    assert issubclass(Certificate, SmoothResult)
    names = [f.name for f in dataclasses.fields(Certificate)]
    assert len(names) == len(set(names))
    assert names[:len(dataclasses.fields(SmoothResult))] == [f.name for f in dataclasses.fields(SmoothResult)]
    w = np.array([0.5, 2.0, 1.0])
    sm = cs_fast.CenterSmoothing(lambda b: b, "sqeuclidean", 0.2, metric_params={"weights": w}, seed=11,
                                 candidates=20)
    c = sm.certify(np.zeros(3), 0.1, **SMALL)
    assert (c.metric, c.sigma, c.eps1, c.n, c.m, c.candidates, c.seed, c.spawn_key) == \
        ("sqfeat", 0.2, 0.1, 400, 800, 20, 11, ())
    assert (c.alpha1, c.alpha2, c.delta, c.gamma, c.beta) == (0.05, 0.05, 0.2, 2.0, 4.0)
    assert c.metric_params["weights"] is not w and np.array_equal(c.metric_params["weights"], w)
    assert c.failure_probability == 0.05 + 0.05 + 2.0 ** -20
    s = sm.smooth(np.zeros(3), n=400, alpha1=0.05, delta=0.2)
    assert type(s) is SmoothResult and s.failure_probability == 0.05 + 2.0 ** -20
    assert cs_fast.CenterSmoothing(lambda b: b, "l2", 0.2, seed=1).certify(np.zeros(3), 0.1, **SMALL) \
        .failure_probability == 0.1


@pytest.mark.parametrize("model, metric, x, params", [
    (box_model, "jaccard", torch.tensor([0.3, -0.2]), {}),
    (lambda b: b ** 2, "sqfeat", np.ones(4), {"weights": np.array([1.0, 0.25, 3.0, 1e-3], dtype=np.float32)}),
    (lambda b: np.tanh(b).astype(np.float32), "tv", np.zeros((2, 3, 3), dtype=np.float32), {"channel_norm": 2}),
    (mask_model, "jaccard_mask", torch.linspace(-1, 1, 9), {}),
])
def test_json_round_trip_restores_every_field_faithfully(model, metric, x, params):
    c = cs_fast.CenterSmoothing(model, metric, 0.3, metric_params=params).certify(x, 0.1, **SMALL)
    back = _json_round_trip(c)
    assert back.to_dict() == c.to_dict()
    assert type(back.center) is type(c.center)
    assert back.center.dtype == c.center.dtype and tuple(back.center.shape) == tuple(c.center.shape)
    assert np.array_equal(np.asarray(back.center), np.asarray(c.center))
    for k, v in params.items():
        assert np.asarray(back.metric_params[k]).dtype == np.asarray(v).dtype
        assert np.array_equal(back.metric_params[k], v)
    for f in dataclasses.fields(Certificate):
        if f.name not in ("center", "metric_params"):
            assert getattr(back, f.name) == getattr(c, f.name), f.name


@pytest.mark.parametrize("value", [
    torch.tensor([1.0, 2.5e-8, -3.0], dtype=torch.float16), torch.tensor([[1.5, 2.0]], dtype=torch.bfloat16),
    torch.zeros((0, 4)), np.arange(6, dtype=np.int16).reshape(2, 3, 1), np.array(np.pi),
    np.array([1 / 3, 1e-300, -0.0]), np.ones((2, 0), dtype=bool),
])
def test_arrays_and_tensors_keep_type_dtype_shape_and_bits(value):
    back = _serialize.decode(json.loads(json.dumps(_serialize.encode(value))))
    assert type(back) is type(value) and back.dtype == value.dtype and tuple(back.shape) == tuple(value.shape)
    if isinstance(value, torch.Tensor):
        assert torch.equal(back, value)
    else:
        assert np.array_equal(back, value) and np.array_equal(np.signbit(back), np.signbit(value))


def test_from_dict_refuses_missing_unknown_or_inconsistent_records():
    d = cs_fast.CenterSmoothing(box_model, "jaccard", 0.3).certify(torch.zeros(2), 0.1, **SMALL).to_dict()
    with pytest.raises(ValueError, match=r"missing \['R'\]"):
        Certificate.from_dict({k: v for k, v in d.items() if k != "R"})
    with pytest.raises(ValueError, match=r"unknown \['inputs'\]"):
        Certificate.from_dict({**d, "inputs": 0})
    with pytest.raises(ValueError, match=r"missing \['bounds'\]"):  # a current record (it has rank) without bounds
        Certificate.from_dict({k: v for k, v in d.items() if k != "bounds"})
    with pytest.raises(ValueError, match="status 'error'"):
        Certificate.from_dict({"input": 0, "status": "error", "error": "model raised"})
    with pytest.raises(ValueError, match="failure_probability"):
        Certificate.from_dict({**d, "failure_probability": 1e-9})
    with pytest.raises(ValueError, match="vacuous"):
        Certificate.from_dict({**d, "vacuous": not d["vacuous"]})
    with pytest.raises(TypeError, match="data: received"):
        Certificate.from_dict([1, 2])


def test_default_seed_is_fresh_recorded_and_reproduces_bit_for_bit():
    x = torch.tensor([0.3, -0.2])
    sm = cs_fast.CenterSmoothing(lambda b: b * 3.0, "l2", 0.5)  # seed=None: the default
    a, b = sm.certify(x, 0.1, **SMALL), sm.certify(x, 0.1, **SMALL)
    assert a.seed != b.seed and a.R != b.R and a.spawn_key == ()
    again = cs_fast.CenterSmoothing(lambda b: b * 3.0, "l2", 0.5, seed=b.seed).certify(x, 0.1, **SMALL)
    assert again.to_dict() == b.to_dict() and torch.equal(again.center, b.center)
    s = sm.smooth(x, n=300, alpha1=0.05, delta=0.2)
    redo = cs_fast.CenterSmoothing(lambda b: b * 3.0, "l2", 0.5, seed=s.seed).smooth(x, n=300, alpha1=0.05, delta=0.2)
    assert redo.to_dict() == s.to_dict() and s.seed not in (a.seed, b.seed)


def test_seed_sequences_are_recorded_and_every_call_uses_the_same_streams():
    ss = np.random.SeedSequence(1234, spawn_key=(3, 1))
    sm = cs_fast.CenterSmoothing(lambda b: b, "l2", 0.5, seed=ss)
    a, b = sm.certify(np.zeros(3), 0.1, **SMALL), sm.certify(np.zeros(3), 0.1, **SMALL)
    assert (a.seed, a.spawn_key) == (1234, (3, 1)) and a.to_dict() == b.to_dict()
    redo = cs_fast.CenterSmoothing(lambda b: b, "l2", 0.5, seed=a.seed_sequence()).certify(np.zeros(3), 0.1, **SMALL)
    assert redo.to_dict() == a.to_dict()
    other = cs_fast.CenterSmoothing(lambda b: b, "l2", 0.5, seed=1234).certify(np.zeros(3), 0.1, **SMALL)
    assert other.R != a.R  # the spawn key matters
    with pytest.raises(ValueError, match="pool_size"):
        cs_fast.CenterSmoothing(lambda b: b, "l2", 0.5, seed=np.random.SeedSequence(1, pool_size=8))


def test_explicit_seed_gives_the_same_noise_as_a_bare_seed_sequence():
    # An int seed k draws from SeedSequence(k): what it did before results recorded their seed.
    a = cs_fast.CenterSmoothing(lambda b: b, "l2", 0.5, seed=5).certify(np.zeros(3), 0.1, **SMALL)
    b = cs_fast.CenterSmoothing(lambda b: b, "l2", 0.5, seed=np.random.SeedSequence(5)).certify(
        np.zeros(3), 0.1, **SMALL)
    assert a.seed == 5 and a.to_dict() == b.to_dict()


def test_weak_candidates_are_refused_unless_allowed():
    x = np.zeros(3)
    with pytest.raises(ValueError, match=r"candidates: received 3; 2\*\*-3 = 0.125 exceeds alpha1 \+ alpha2"):
        cs_fast.CenterSmoothing(lambda b: b, "l2", 0.5, candidates=3).certify(x, 0.1)
    # 2**-7 = 0.0078 <= 0.01: the smallest k for the default alphas
    ok = cs_fast.CenterSmoothing(lambda b: b, "l2", 0.5, candidates=7).certify(x, 0.1, n=300, m=500, delta=0.2)
    assert ok.failure_probability == 0.01 + 2.0 ** -7
    weak = cs_fast.CenterSmoothing(lambda b: b, "l2", 0.5, candidates=1, allow_weak_candidates=True)
    assert weak.certify(x, 0.1, n=300, m=500, delta=0.2).failure_probability == 0.51
    with pytest.raises(ValueError, match=r"exceeds alpha1 = 0.005"):  # smooth has alpha1 only
        cs_fast.CenterSmoothing(lambda b: b, "l2", 0.5, candidates=7).smooth(x)
    with pytest.raises(TypeError, match="allow_weak_candidates"):
        cs_fast.CenterSmoothing(lambda b: b, "l2", 0.5, allow_weak_candidates="yes")
    check_candidates(None, 1e-12)
    check_candidates(30, 0.01)


def test_vacuous_when_eps_out_reaches_the_metric_bound():
    assert [cs_fast.get_metric(m).upper_bound for m in ("jaccard", "jaccard_mask", "angular")] == [1.0] * 3
    assert all(cs_fast.get_metric(m).upper_bound is None for m in ("tv", "sqfeat", "l2", "l1"))
    # Boxes of side 2 jittering with sigma 2: R is well above 1/3, so eps_out = 3 R >= 1.
    wild = cs_fast.CenterSmoothing(box_model, "jaccard", 2.0, seed=0).certify(torch.zeros(2), 0.5, **SMALL)
    assert not wild.abstained and wild.eps_out >= 1.0 and wild.vacuous
    tight = cs_fast.CenterSmoothing(box_model, "jaccard", 0.05, seed=0).certify(torch.zeros(2), 0.01, **SMALL)
    assert tight.eps_out < 1.0 and not tight.vacuous
    far = cs_fast.CenterSmoothing(lambda b: 100 * b, "l2", 2.0, seed=0).certify(np.zeros(2), 0.5, **SMALL)
    assert far.eps_out > 1.0 and not far.vacuous  # unbounded metric
    abstained = cs_fast.CenterSmoothing(box_model, "jaccard", 0.1, seed=0).compare_bounds(
        torch.zeros(2), 0.15, n=400, m=300, alpha1=0.05, alpha2=0.05, delta=0.2)["paper"]  # q > 1
    assert abstained.abstained and not abstained.vacuous
    assert wild.to_dict()["vacuous"] is True
