"""Shared fixtures: seeded generators and sample data for every registered metric."""

import importlib.util
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

import cs_fast


def _real_gpu():
    try:
        from numba import cuda

        return cuda.is_available()
    except Exception:  # no numba-cuda, no driver: no GPU
        return False


# The device suite runs in the main session only where it can run (a real GPU, or
# the simulator switched on before numba was imported). Elsewhere
# tests/test_cuda_simulator.py runs it in its own process under the simulator, so
# collecting it here would only add skips.
if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and not _real_gpu():
    collect_ignore = ["cuda_sim"]

# The tests of tests/test_cuda_simulator.py that run tests/cuda_sim under the simulator, and the
# markers each one selects there (its slow set: production sizes and the full parameter grids).
SIMULATOR_RUNS = {
    "test_device_kernels_pass_under_the_cuda_simulator": "not slow",
    "test_device_kernels_at_full_size_pass_under_the_cuda_simulator": "slow",
}
SIMULATOR_TIMEOUT = 1500


class SimulatorRuns:
    """tests/cuda_sim under the simulator, in processes of their own started at collection.

    The simulator is one Python thread: started before the first test, its runs go on beside the
    rest of the session on the second core instead of after it. Each selection runs once, in
    order; :meth:`result` waits for one.
    """

    def __init__(self, selections):
        self.results = {}
        self.done = {selection: threading.Event() for selection in selections}
        threading.Thread(target=self._run_all, args=(list(selections),), daemon=True).start()

    @staticmethod
    def run(selection):
        """``subprocess.CompletedProcess`` of ``pytest tests/cuda_sim -m selection`` under the simulator."""
        env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
        root = pathlib.Path(__file__).resolve().parents[1]
        args = [sys.executable, "-m", "pytest", "tests/cuda_sim", "-q", "-p", "no:cacheprovider", "-m", selection]
        try:
            return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=SIMULATOR_TIMEOUT)
        except subprocess.TimeoutExpired as err:
            return err

    def _run_all(self, selections):
        for selection in selections:
            self.results[selection] = self.run(selection)
            self.done[selection].set()

    def result(self, selection):
        self.done[selection].wait()
        return self.results[selection]


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("numba_cuda") is None:
        return
    checks = [item for item in items if getattr(item, "originalname", None) in SIMULATOR_RUNS]
    if checks:
        config.cs_fast_simulator = SimulatorRuns(dict.fromkeys(SIMULATOR_RUNS[item.originalname] for item in checks))
        # Waiting for the simulator comes last, once the rest of the session has run beside it.
        items[:] = [item for item in items if item not in checks] + checks


def make_samples(metric, rng, n, dtype=np.float64, shape=None):
    """Random samples in the metric's layout (boxes include empty ones)."""
    if metric == "jaccard":
        xy = rng.uniform(0, 10, size=(n, 2))
        wh = rng.uniform(-1, 5, size=(n, 2))  # some non-positive: empty boxes
        return np.concatenate([xy, xy + wh], axis=1).astype(dtype)
    if metric == "jaccard_mask":
        masks = rng.random((n,) + (shape or (5, 7))) < rng.uniform(0.1, 0.9)
        masks[0] = False  # an empty set
        return masks
    if metric == "tv":
        return rng.standard_normal((n,) + (shape or (3, 5, 6))).astype(dtype)
    if metric == "angular":
        return (rng.standard_normal((n,) + (shape or (10,))) + 0.5).astype(dtype)
    return rng.standard_normal((n,) + (shape or (10,))).astype(dtype)


# (metric, params, per-sample shape) covering every layout of every metric.
CASES = [
    ("jaccard", {}, None),
    ("jaccard_mask", {}, (5, 7)),
    ("jaccard_mask", {}, (70,)),  # more than 64 bits: two packed words
    ("tv", {}, (3, 5, 6)),
    ("tv", {"channel_norm": 2}, (3, 5, 6)),
    ("tv", {}, (6, 7)),
    ("tv", {}, (9,)),
    ("sqfeat", {}, (12,)),
    ("sqfeat", {"weights": "random"}, (3, 4)),
    ("l2", {}, (10,)),
    ("l1", {}, (10,)),
    ("angular", {}, (10,)),
]


def case_id(case):
    metric, params, shape = case
    extra = ",".join(f"{k}" for k in params)
    return f"{metric}{shape}{'[' + extra + ']' if extra else ''}"


def resolve_params(params, shape, rng):
    params = dict(params)
    if params.get("weights") == "random":
        params["weights"] = rng.uniform(0, 2, size=shape)
    return params


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)


@pytest.fixture(params=CASES, ids=case_id)
def case(request):
    return request.param


def test_registry_lists_every_case_metric():
    assert {c[0] for c in CASES} == set(cs_fast.available_metrics())


def _ptx_probe(x):
    x[0] = 0.0


@pytest.fixture
def ptx_target(monkeypatch):
    """``(numba.cuda, numba.types)`` set up to compile kernels to PTX for sm_80 without a GPU.

    The simulator runs kernels as Python and cannot catch what only the
    compiler rejects; this compiles for the real target instead. Skips under
    the simulator and without libNVVM (pip install nvidia-nvvm, or numba-cuda[cu13]).
    """
    from numba.core import config

    if config.ENABLE_CUDASIM:
        pytest.skip("the simulator is on in this process")
    cuda = pytest.importorskip("numba.cuda")
    from numba import types as nt

    try:
        cuda.compile_ptx(_ptx_probe, (nt.float64[:],), cc=(8, 0))
    except Exception as err:  # missing libNVVM surfaces as several error types
        pytest.skip(f"libNVVM is not available ({type(err).__name__}): pip install nvidia-nvvm")
    import types

    import numba.cuda.dispatcher as dispatcher

    # Device functions compile for the current device's capability: stand one in.
    monkeypatch.setattr(dispatcher, "get_current_device", lambda: types.SimpleNamespace(compute_capability=(8, 0)))
    return cuda, nt
