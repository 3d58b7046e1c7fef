"""cs_fast.distributed on a local Ray: equal across worker counts, resumable, nothing lost."""

import json
import os
import signal
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the distributed extra (Ray) is part of the test extra; install it")

import cs_fast  # noqa: E402
from cs_fast import distributed  # noqa: E402
from cs_fast.distributed import (FailedInput, ImportedCallable, WorkerPool, certify_many, certify_split,  # noqa: E402
                                 input_seed)

W = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, -1.0], [2.0, 0.0, 1.0], [0.3, 0.3, 0.3]])


def linear(batch):
    return np.asarray(batch) @ W.T


def linear_factory():
    return linear


class Flaky:
    """Raises on inputs whose first coordinate is above 50 (an error inside the model)."""

    def __call__(self, batch):
        if float(np.asarray(batch)[:, 0].mean()) > 50:
            raise RuntimeError("flaky model: cannot handle this input")
        return linear(batch)


def flaky_factory():
    return Flaky()


class DieOnce:
    """Kills its own process (SIGKILL) the first time it sees an input near 7, then behaves."""

    def __init__(self, marker):
        self.marker = marker

    def __call__(self, batch):
        if abs(float(np.asarray(batch)[:, 0].mean()) - 7.0) < 1.0 and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return linear(batch)


class DieOnceFactory:
    def __init__(self, marker):
        self.marker = marker

    def __call__(self):
        return DieOnce(self.marker)


PARAMS = dict(metric="l2", sigma=0.1, eps1=0.05, n=400, m=2000, alpha1=0.05, alpha2=0.05, delta=0.2,
              batch_size=150)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # Workers unpickle this module's factories by value (tests/ is not on their path).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture
def inputs():
    return np.random.default_rng(0).normal(size=(5, 3))


def _dicts(results):
    return {i: r.to_dict() for i, r in results}


def test_same_certificates_for_one_two_workers_and_in_process(inputs):
    one = _dicts(certify_many(linear_factory, inputs, seed=11, workers=1, **PARAMS))
    two = _dicts(certify_many(linear_factory, inputs, seed=11, workers=2, **PARAMS))
    assert sorted(one) == list(range(5))
    assert one == two
    eps1 = PARAMS["eps1"]
    kwargs = {k: v for k, v in PARAMS.items() if k not in ("metric", "sigma", "eps1", "batch_size")}
    for i in range(5):
        smoother = cs_fast.CenterSmoothing(linear, "l2", 0.1, batch_size=150, seed=input_seed(11, i))
        local = smoother.certify(inputs[i], eps1, **kwargs)
        assert local.to_dict() == one[i]
        assert not local.abstained
    # distinct inputs get distinct seeds, recorded
    assert len({one[i]["seed"] for i in range(5)}) == 5


def test_input_seed_depends_on_run_seed_and_index_only():
    assert input_seed(3, 4) == input_seed(3, 4)
    assert len({input_seed(3, 0), input_seed(3, 1), input_seed(4, 0)}) == 3


@pytest.mark.slow
def test_results_file_and_resume(tmp_path, inputs):
    out = tmp_path / "certs.jsonl"
    gen = certify_many(linear_factory, inputs, seed=5, workers=1, output=out, **PARAMS)
    first = [next(gen), next(gen)]
    gen.close()  # interrupted after two inputs
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and {json.loads(line)["input"] for line in lines} == {i for i, _ in first}
    with open(out, "a") as f:
        f.write('{"input": 4, "digest": "torn')  # a run killed mid-write
    changed = inputs.copy()
    changed[first[0][0]] += 0.5  # one already-certified input changes: it must be recertified
    resumed = dict(certify_many(linear_factory, changed, seed=5, workers=2, output=out, resume=True, **PARAMS))
    assert first[1][0] not in resumed  # unchanged and certified: skipped
    assert set(resumed) == set(range(5)) - {first[1][0]}
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["input"] for r in records) == list(range(5))  # every input exactly once
    full = _dicts(certify_many(linear_factory, changed, seed=5, workers=1, **PARAMS))
    for r in records:
        body = {k: v for k, v in r.items() if k not in ("input", "run_seed", "digest", "status")}
        assert r["status"] == "ok" and body == full[r["input"]]
    # nothing left to do: a second resume yields nothing and keeps the file
    assert list(certify_many(linear_factory, changed, seed=5, workers=1, output=out, resume=True, **PARAMS)) == []
    assert sorted(json.loads(line)["input"] for line in out.read_text().splitlines()) == list(range(5))


@pytest.mark.slow
def test_killed_worker_input_is_retried_and_nothing_is_lost(tmp_path, inputs):
    x = inputs.copy()
    x[2, 0] = 7.0
    out = tmp_path / "certs.jsonl"
    marker = str(tmp_path / "died")
    got = dict(certify_many(DieOnceFactory(marker), x, seed=1, workers=2, output=out, **PARAMS))
    assert os.path.exists(marker)  # a worker process really was killed
    assert sorted(got) == list(range(5)) and all(not isinstance(r, FailedInput) for r in got.values())
    reference = _dicts(certify_many(linear_factory, x, seed=1, workers=1, **PARAMS))
    assert _dicts(got.items()) == reference
    assert sorted(json.loads(line)["input"] for line in out.read_text().splitlines()) == list(range(5))


@pytest.mark.slow
def test_inputs_queued_on_a_killed_worker_are_not_charged_a_try(tmp_path, inputs):
    # Each worker holds two inputs while more wait than there are workers: with 6 inputs on 2
    # workers, worker A certifies input 0 with input 2 queued behind it. A dies on input 0; with one
    # try allowed, input 0 becomes an error record, while input 2 (never started) is certified.
    x = np.concatenate([inputs, inputs[:1] + 1.0])
    x[0, 0] = 7.0
    out = tmp_path / "certs.jsonl"
    got = dict(certify_many(DieOnceFactory(str(tmp_path / "died")), x, seed=1, workers=2, max_attempts=1,
                            output=out, **PARAMS))
    assert sorted(got) == list(range(6))
    assert isinstance(got[0], FailedInput) and got[0].source == "worker" and got[0].attempts == 1
    assert all(not isinstance(got[i], FailedInput) for i in range(1, 6))
    reference = _dicts(certify_many(linear_factory, x, seed=1, workers=1, **PARAMS))
    assert all(got[i].to_dict() == reference[i] for i in range(1, 6))
    assert sorted(json.loads(line)["input"] for line in out.read_text().splitlines()) == list(range(6))


@pytest.mark.slow
def test_worker_pool_is_reused_and_gives_the_certificates_of_a_fresh_run(inputs):
    fresh = _dicts(certify_many(linear_factory, inputs, seed=11, workers=2, **PARAMS))
    with WorkerPool(linear_factory, workers=2) as pool:
        pids = sorted(d["pid"] for d in pool.describe())
        first = _dicts(certify_many(pool, inputs, seed=11, **PARAMS))
        again = _dicts(certify_many(pool, inputs[::-1], seed=11, **PARAMS))
        assert sorted(d["pid"] for d in pool.describe()) == pids  # the same processes: the model loaded once
        with pytest.raises(ValueError, match="workers"):
            list(certify_many(pool, inputs, seed=11, workers=2, **PARAMS))
    assert first == fresh
    assert again == _dicts(certify_many(linear_factory, inputs[::-1], seed=11, workers=1, **PARAMS))
    with pytest.raises(ValueError, match="closed WorkerPool"):
        list(certify_many(pool, inputs, seed=11, **PARAMS))


def test_workers_get_their_threads_and_passive_openmp():
    with WorkerPool(linear_factory, workers=1, threads=1) as pool:
        (info,) = pool.describe()
    assert info["numba_threads"] == 1 and info["torch_threads"] == 1
    assert info["env"]["OMP_NUM_THREADS"] == "1" and info["env"]["NUMBA_NUM_THREADS"] == "1"
    assert info["env"]["OMP_WAIT_POLICY"] == os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    assert distributed.worker_env(2)["MKL_NUM_THREADS"] == "2"


@pytest.mark.slow
def test_embedded_local_ray_starts_with_the_light_configuration(tmp_path):
    # In a fresh process (this module's Ray is already running): cs_fast starts its own Ray with
    # LOCAL_SYSTEM_CONFIG (an unknown key would make the GCS exit and ray.init time out), certifies,
    # and stops it again.
    import subprocess

    code = ("import numpy as np, ray\n"
            "from cs_fast.distributed import certify_many\n"
            "got = dict(certify_many('ident:build', np.zeros((2, 3)) + [[1, 2, 3]], metric='l2', sigma=0.1, "
            "eps1=0.05, n=200, m=400, alpha1=0.05, alpha2=0.05, delta=0.2, batch_size=200, seed=3, workers=1))\n"
            "assert sorted(got) == [0, 1] and not ray.is_initialized(), got\n"
            "print('ok')\n")
    (tmp_path / "ident.py").write_text("def build():\n    return lambda b: b\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(cs_fast.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0 and "ok" in run.stdout, run.stderr[-3000:]


def test_bad_input_and_model_error_become_error_records(tmp_path, inputs):
    x = inputs.copy()
    x[1, 2] = np.nan
    x[3, 0] = 99.0
    out = tmp_path / "certs.jsonl"
    got = dict(certify_many(flaky_factory, x, seed=2, workers=2, output=out, **PARAMS))
    assert sorted(got) == list(range(5))
    assert isinstance(got[1], FailedInput) and got[1].source == "input" and "NaN" in got[1].error
    assert isinstance(got[3], FailedInput) and got[3].source == "model" and "flaky model" in got[3].error
    for i in (0, 2, 4):
        assert not isinstance(got[i], FailedInput) and not got[i].abstained
    records = {json.loads(line)["input"]: json.loads(line) for line in out.read_text().splitlines()}
    assert records[1]["status"] == "error" and records[3]["status"] == "error" and records[0]["status"] == "ok"


def test_split_m_certificate_equals_single_process():
    x = np.array([0.2, -0.1, 0.4])
    seed = 123
    kwargs = dict(n=400, m=2000, alpha1=0.05, alpha2=0.05, delta=0.2)
    split = certify_split(linear_factory, x, metric="l2", sigma=0.1, eps1=0.05, batch_size=150, seed=seed,
                          workers=2, **kwargs)
    local = cs_fast.CenterSmoothing(linear, "l2", 0.1, batch_size=150, seed=seed).certify(x, 0.05, **kwargs)
    assert not local.abstained
    assert split.to_dict() == local.to_dict()


def test_imported_callable_finds_a_module_in_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "cs_fast_dist_model.py").write_text("def f(b):\n    return b * 2\n")
    monkeypatch.chdir(tmp_path)
    ref = ImportedCallable("cs_fast_dist_model:f")
    assert ref()(3) == 6


@pytest.mark.parametrize("kwargs, name", [
    (dict(inputs=np.zeros((0, 3))), "inputs"),
    (dict(eps1=[]), "eps1"),
    (dict(workers=0), "workers"),
    (dict(resume=True), "resume"),
    (dict(model_factory=3), "model_factory"),
])
def test_bad_arguments_are_named(kwargs, name, inputs):
    args = dict(model_factory=linear_factory, inputs=inputs, **PARAMS)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=name):
        list(certify_many(args.pop("model_factory"), args.pop("inputs"), **args))


def test_missing_ray_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match="pip install"):
        distributed._ray()


@pytest.mark.slow
def test_cli_workers_output_resume_and_summary(tmp_path, capsys):
    from cs_fast_apps import cli
    from cs_fast.models.toy import blob_images

    out = tmp_path / "certs.jsonl"
    small = ["--n", "300", "--m", "600", "--alpha1", "0.05", "--alpha2", "0.05", "--delta", "0.2",
             "--batch-size", "300", "--seed", "4"]
    rc = cli.main(["certify", *small, "--workers", "2", "--output", str(out), "--eps1", "0.1", "0.2"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "2 certified, 0 abstained, 0 errors" in err and "certificates/s" in err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["input"], r["eps1"]) for r in records] == [(0, 0.1), (0, 0.2)]
    # one seed rule: in this process, on one worker and on two workers, the same lines
    inproc, one = tmp_path / "inproc.jsonl", tmp_path / "one.jsonl"
    assert cli.main(["certify", *small, "--output", str(inproc), "--eps1", "0.1", "0.2"]) == 0
    assert cli.main(["certify", *small, "--workers", "1", "--output", str(one), "--eps1", "0.1", "0.2"]) == 0
    capsys.readouterr()

    def lines(path):
        return [{k: v for k, v in json.loads(line).items() if k not in ("digest", "status")}
                for line in path.read_text().splitlines()]

    assert lines(inproc) == lines(one) == lines(out)
    # the same certificates as the in-process CLI with that input's seed
    local = cs_fast.CenterSmoothing(__import__("cs_fast.models.toy", fromlist=["x"]).blob_detector, "jaccard", 0.25,
                                    batch_size=300, seed=input_seed(4, 0))
    expect = local.certify(blob_images()[0], 0.1, n=300, m=600, alpha1=0.05, alpha2=0.05, delta=0.2)
    assert {k: v for k, v in records[0].items() if k not in ("input", "run_seed", "digest", "status")} == expect.to_dict()
    rc = cli.main(["certify", *small, "--resume", "--output", str(out), "--eps1", "0.1", "0.2"])
    assert rc == 0 and "0 records" in capsys.readouterr().err  # nothing left to do
    assert [json.loads(line) for line in out.read_text().splitlines()] == records  # both eps1 records kept
    assert cli.main(["certify", *small, "--resume", "--eps1", "0.1"]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("resources, workers, plan", [
    ({"CPU": 2.0}, None, (2, 1, 0)),  # one worker per core, one thread each
    ({"CPU": 2.0}, 1, (1, 2, 0)),  # one worker, both cores' threads
    ({"CPU": 16.0, "GPU": 2.0}, None, (2, 8, 1)),  # one actor per GPU, num_gpus=1
    ({"CPU": 16.0, "GPU": 4.0}, 2, (2, 8, 1)),
])
def test_worker_plan(resources, workers, plan):
    assert distributed._plan_workers(resources, workers) == plan


def test_worker_plan_with_threads():
    assert distributed._plan_workers({"CPU": 2.0}, 1, threads=1) == (1, 1, 0)  # the per-worker scaling baseline
    with pytest.raises(ValueError, match="threads: received 2 for 2 workers"):
        distributed._plan_workers({"CPU": 2.0}, 2, threads=2)


@pytest.mark.parametrize("resources, workers", [({"CPU": 2.0}, 3), ({"CPU": 8.0, "GPU": 1.0}, 2)])
def test_more_workers_than_the_cluster_holds_is_refused(resources, workers):
    with pytest.raises(ValueError, match="workers: received"):
        distributed._plan_workers(resources, workers)
