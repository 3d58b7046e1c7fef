r"""Certify a whole dataset on Ray: deterministic, resumable, nothing lost.

What it guarantees:

- **Determinism.** Input ``i`` is certified with the seed
  :func:`input_seed` ``(run_seed, i)``, recorded in its certificate. A
  certificate depends only on the model, the input, the parameters and that
  seed, so it is the same bit for bit with 1 worker, 2 workers, any
  scheduling order, and in-process ``CenterSmoothing(..., seed=s).certify``
  (given a model that is itself deterministic for a fixed number of threads).
- **Nothing lost.** Each record is appended to the JSON-lines ``output`` as
  it completes, flushed and fsynced. A record carries the input index and a
  digest of the input and the parameters; ``resume=True`` keeps the records
  whose digest matches, recertifies changed inputs and earlier errors, and
  rewrites the file so that it holds every input exactly once. A worker that
  dies mid-input (its process killed, a node lost) has that input retried on
  a fresh worker; an input that still fails, a bad input, or an exception in
  the model becomes an error record for that input while the others complete.
- **One certificate, many workers.** :func:`certify_split` spreads the ``m``
  certification samples of one input over the workers. Each worker replays
  the certification noise stream up to its share (drawing noise is cheap;
  the model calls are not), so the gathered distances are exactly those of
  one process and the order statistic, taken once on all of them, gives the
  same certificate.

How it keeps Ray's cost per input small: a :class:`WorkerPool` loads the model once per worker and
can serve many calls; each worker holds one input queued behind the one it certifies, so it never
waits for the driver; the parameters go through the object store once; CPU workers get their
thread counts and passive OpenMP threads (:func:`worker_env`); the embedded local Ray runs without
the services a one-machine run does not need (:data:`LOCAL_SYSTEM_CONFIG`).

Ray is imported only here and only when a function needs it (the
``distributed`` extra: ``pip install -e '.[distributed]'`` in the cs_fast clone). Without an
``address`` an embedded local Ray is started and stopped; ``address="auto"``
or ``"ray://host:port"`` joins an existing cluster, whose nodes must have
cs_fast and the model's module installed.
"""

import hashlib
import importlib
import json
import math
import os
import sys
from dataclasses import dataclass

import numpy as np

from ._checks import check_int, describe
from .bounds import require_certifiable
from .seeds import input_seed  # noqa: F401  (the rule of cs_fast.seeds; re-exported for callers of this module)
from .smoothing import ALPHA_DEFAULT, DELTA_DEFAULT, M_DEFAULT, N_DEFAULT, Certificate, CenterSmoothing

RAY_INSTALL = "pip install -e '.[distributed]' in the cs_fast clone (or: pip install ray)"


# --------------------------------------------------------------------------- seeds and digests


def _array_bytes(x):
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu().numpy()
    x = np.ascontiguousarray(x)
    return x.dtype.str.encode() + repr(x.shape).encode() + x.tobytes()


def input_digest(x, params):
    """sha256 of an input (dtype, shape, bytes) and the certification parameters (canonical JSON)."""
    h = hashlib.sha256()
    h.update(_array_bytes(x))
    h.update(json.dumps(params, sort_keys=True, default=_json_default).encode())
    return h.hexdigest()


def _json_default(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return {"dtype": value.dtype.str, "shape": list(value.shape), "sha256": hashlib.sha256(
            np.ascontiguousarray(value).tobytes()).hexdigest()}
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot describe {describe(value)} in a parameter digest")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FailedInput:
    """An input that produced no certificate: a bad input, a model error, or a worker lost too often.

    Attributes
    ----------
    index : int
    error : str
        ``"<ExceptionType>: <message>"``.
    source : str
        ``"model"`` (raised inside the user's model), ``"input"`` (rejected by
        cs_fast's checks), or ``"worker"`` (the worker process died ``attempts`` times).
    attempts : int
    """

    index: int
    error: str
    source: str
    attempts: int

    def to_dict(self):
        return {"status": "error", "error": self.error, "source": self.source, "attempts": self.attempts}


class ResultsFile:
    """An append-only JSON-lines file of records, one per input, each flushed and fsynced.

    A record is ``{"input": i, "digest": ..., "status": "ok", **certificate.to_dict()}``
    or ``{"input": i, "digest": ..., "status": "error", "error": ..., ...}``.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._file = None

    def load(self):
        """Lists of records by input index (one per eps1); a torn line (a run killed mid-write) is dropped."""
        records = {}
        if not os.path.exists(self.path):
            return records
        with open(self.path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("input"), int):
                    records.setdefault(record["input"], []).append(record)
        return records

    def rewrite(self, records):
        """Replace the file's content by ``records``, lists by input (atomically: temporary file, fsync, rename)."""
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            for index in sorted(records):
                for record in records[index]:
                    f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def append(self, record):
        if self._file is None:
            self._file = open(self.path, "a")
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None


# --------------------------------------------------------------------------- models on workers


class ImportedCallable:
    """A picklable ``module:callable`` reference, imported where it is called.

    ``ImportedCallable("mymodel:net")()`` returns ``mymodel.net`` itself (use
    it as a model factory for a plain model function); ``search`` directories
    (the driver's working directory by default) are put on ``sys.path`` first,
    as ``python -m`` would.
    """

    def __init__(self, spec, search=None):
        if not isinstance(spec, str) or spec.count(":") != 1:
            raise ValueError(f"model_factory: received {spec!r}; expected 'module:callable'")
        self.spec = spec
        self.search = [os.getcwd()] if search is None else list(search)

    def resolve(self):
        for path in self.search:
            if path not in sys.path:
                sys.path.insert(0, path)
        module_name, _, attr = self.spec.partition(":")
        obj = getattr(importlib.import_module(module_name), attr)
        if not callable(obj):
            raise TypeError(f"model_factory: {self.spec!r} is {describe(obj)}; expected a callable")
        return obj

    def __call__(self):
        return self.resolve()

    def __repr__(self):
        return f"ImportedCallable({self.spec!r})"


def _factory(model_factory):
    """A picklable zero-argument callable that builds the model."""
    if isinstance(model_factory, str):
        ref = ImportedCallable(model_factory)
        return _CallFactory(ref)
    if not callable(model_factory):
        raise TypeError(f"model_factory: received {describe(model_factory)}; expected 'module:callable' "
                        "or a picklable zero-argument callable that builds the model")
    return model_factory


def _factory_name(model_factory):
    """What the digest records of the model: its 'module:callable', or the factory's qualified name."""
    if isinstance(model_factory, str):
        return model_factory
    if isinstance(model_factory, ImportedCallable):
        return model_factory.spec
    kind = model_factory if isinstance(model_factory, type) or callable(getattr(model_factory, "__qualname__", None)) \
        else type(model_factory)
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', repr(kind))}"


class _CallFactory:
    """``module:callable`` names a factory: import it, then call it to build the model."""

    def __init__(self, ref):
        self.ref = ref

    def __call__(self):
        return self.ref.resolve()()


class _Worker:
    """Holds one model per process (a Ray actor); each task builds its own CenterSmoothing (cheap)."""

    def __init__(self, factory, threads):
        if threads is not None:
            import numba
            import torch

            numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
            torch.set_num_threads(threads)
        self.model = factory()

    def describe(self):
        """The process id, thread counts and threading environment this worker runs with."""
        import numba
        import torch

        return {"pid": os.getpid(), "numba_threads": numba.get_num_threads(), "torch_threads": torch.get_num_threads(),
                "env": {k: os.environ.get(k) for k in _THREAD_ENV + ("OMP_WAIT_POLICY",)}}

    def certify(self, index, x, eps1_list, seed, smoother_kwargs, certify_kwargs):
        """Records (dicts) for one input, one per eps1; errors become error records."""
        try:
            smoother = CenterSmoothing(_ModelCall(self.model), seed=seed, **smoother_kwargs)
            return [("ok", smoother.certify(x, eps1, **certify_kwargs).to_dict()) for eps1 in eps1_list]
        except _ModelError as err:
            return [("error", {"error": err.text, "source": "model"})]
        except Exception as err:  # the input's checks (ValueError/TypeError) or anything else of cs_fast's
            return [("error", {"error": f"{type(err).__name__}: {err}", "source": "input"})]

    # ---------------------------------------------------------------- split certification

    def center(self, x, eps1, seed, smoother_kwargs, certify_kwargs):
        """Everything of the certificate but R (:meth:`CenterSmoothing.certify_center`)."""
        smoother = CenterSmoothing(_ModelCall(self.model), seed=seed, **smoother_kwargs)
        return smoother.certify_center(x, eps1, **certify_kwargs)

    def distances(self, x, center, seed, m, first_batch, stop_batch, smoother_kwargs):
        """Certification distances of batches [first_batch, stop_batch) (:meth:`CenterSmoothing.certification_distances`)."""
        smoother = CenterSmoothing(_ModelCall(self.model), seed=seed, **smoother_kwargs)
        return smoother.certification_distances(x, center, m, first_batch, stop_batch)


class _ModelError(Exception):
    def __init__(self, text):
        super().__init__(text)
        self.text = text


class _ModelCall:
    """The model, with its exceptions marked as the model's."""

    def __init__(self, model):
        self.model = model

    def __call__(self, batch):
        try:
            return self.model(batch)
        except Exception as err:
            raise _ModelError(f"{type(err).__name__} raised in the model: {err}") from err


# --------------------------------------------------------------------------- Ray and the workers


def _ray():
    try:
        import ray
    except ImportError:
        raise ImportError(f"cs_fast.distributed needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


#: ``_system_config`` of the embedded local Ray. On a few cores Ray's own processes compete with the
#: workers for CPU, so everything a one-machine run does not need is off: metrics collection and
#: export, the event statistics, the memory monitor's 250 ms polling of /proc, and the idle worker
#: processes Ray prestarts (the certify workers need their own threading environment, so they never
#: reuse them, and each costs a Python start-up); the raylet reports its resources every second
#: instead of every 100 ms (nothing is autoscaled). Measured idle: 0.28 instead of 0.59 CPU-seconds
#: per 20 s for all of Ray's processes, and 8 instead of 10 processes
#: (bench/distributed_throughput.py records the CPU-seconds of every Ray process during the run).
#: Every key must be one this Ray knows: an unknown key makes the GCS exit and ``ray.init`` time out.
LOCAL_SYSTEM_CONFIG = {
    "enable_metrics_collection": False,
    "event_stats": False,
    "memory_monitor_refresh_ms": 0,
    "enable_worker_prestart": False,
    "prestart_worker_first_driver": False,
    "raylet_report_resources_period_milliseconds": 1000,
}

_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def worker_env(threads):
    """The environment variables a CPU worker with ``threads`` threads starts with.

    Every thread pool (OpenMP, which numba's ``omp`` layer and torch use, OpenBLAS, MKL, numba)
    gets ``threads`` threads, and OpenMP threads sleep when idle (``OMP_WAIT_POLICY=PASSIVE``,
    unless the driver's environment sets another policy). OpenMP's default is to spin after each
    parallel region; a worker's spinning threads then take the cores the other workers, Ray's
    processes and the driver need, and on a loaded machine a spinning team waits for a descheduled
    member: measured here under load (load average 9 to 34 on 2 cores), in-process with 2 threads,
    7 to 12 s per input spinning against 0.6 to 1.2 s passive, for the same 0.53-0.62 CPU-seconds
    of work.
    """
    env = {k: str(threads) for k in _THREAD_ENV}
    env["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    return env


class _Cluster:
    """Ray started (and later stopped) by cs_fast, or joined at ``address``."""

    def __init__(self, address, cores):
        self.ray = _ray()
        self.started = False
        if not self.ray.is_initialized():
            if address is None:
                # Usage stats are read from the environment at start-up: off for this embedded Ray only.
                saved = os.environ.get("RAY_USAGE_STATS_ENABLED")
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                try:
                    self.ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
                                  configure_logging=False, _system_config=dict(LOCAL_SYSTEM_CONFIG))
                finally:
                    if saved is None:
                        os.environ.pop("RAY_USAGE_STATS_ENABLED", None)
            else:
                self.ray.init(address=address, log_to_driver=False, configure_logging=False)
            self.started = True

    def resources(self):
        return self.ray.cluster_resources()

    def close(self):
        if self.started:
            self.ray.shutdown()


def _plan_workers(resources, workers, threads=None):
    """(number of workers, CPUs per worker, GPUs per worker) for the cluster's ``resources``.

    One worker per GPU (``num_gpus=1`` each) where Ray sees GPUs, else one per
    CPU; each worker gets ``threads`` CPUs (default ``cpus // workers``) as its
    numba and torch threads, so that workers x threads <= cores.
    """
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", os.cpu_count() or 1)))
    kind, available = ("GPUs", gpus) if gpus else ("CPUs", cpus)
    count = available if workers is None else workers
    if count > available:
        raise ValueError(f"workers: received {workers}; expected at most {available}, the {kind} Ray sees "
                         "(a worker holds one GPU, or at least one CPU)")
    if threads is None:
        threads = max(1, cpus // count)
    elif count * threads > cpus:
        raise ValueError(f"threads: received {threads} for {count} workers; expected workers x threads <= "
                         f"{cpus}, the CPUs Ray sees")
    return count, threads, (1 if gpus else 0)


class WorkerPool:
    """Ray workers that each hold the model, reusable across :func:`certify_many` calls.

    :func:`certify_many` builds a pool for one call when given a model
    factory; build one yourself to certify several datasets or parameter
    sets while each worker loads the model (and the compiled kernels) once::

        with WorkerPool("mymodel:build", workers=2) as pool:
            a = dict(certify_many(pool, X, metric="tv", sigma=0.25, eps1=0.5, seed=0))
            b = dict(certify_many(pool, Y, metric="tv", sigma=0.25, eps1=0.5, seed=1))

    A pool's certificates are those of a fresh run, bit for bit. A worker whose
    process dies is replaced by a fresh one (which loads the model again).

    Parameters
    ----------
    model_factory : str or callable
        As :func:`certify_many`.
    workers, threads, address
        As :func:`certify_many`.
    """

    def __init__(self, model_factory, *, workers=None, threads=None, address=None):
        self.factory = _factory(model_factory)
        self.model_name = _factory_name(model_factory)
        if workers is not None:
            workers = check_int(workers, "workers")
        if threads is not None:
            threads = check_int(threads, "threads")
        self._cluster = _Cluster(address, os.cpu_count())
        try:
            self.workers, self.threads, gpus = _plan_workers(self._cluster.resources(), workers, threads)
        except BaseException:
            self._cluster.close()
            raise
        self.ray = self._cluster.ray
        options = dict(num_cpus=self.threads, num_gpus=gpus, max_restarts=0, max_task_retries=0,
                       runtime_env={"env_vars": worker_env(self.threads)})
        self._actor_class = self.ray.remote(_Worker).options(**options)
        self.actors = [self._new_actor() for _ in range(self.workers)]

    def _new_actor(self):
        return self._actor_class.remote(self.factory, self.threads)

    def replace(self, actor):
        """A fresh worker in place of ``actor`` (whose process died); returns it."""
        fresh = self._new_actor()
        self.actors[self.actors.index(actor)] = fresh
        return fresh

    def describe(self):
        """:meth:`_Worker.describe` of every worker: process ids, thread counts, threading environment."""
        return self.ray.get([a.describe.remote() for a in self.actors])

    def close(self):
        """Stop the workers, and the embedded Ray if this pool started it."""
        if self.actors is None:
            return
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = None
        self._cluster.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------- the run


def certify_many(model_factory, inputs, *, metric, sigma, eps1, n=N_DEFAULT, m=M_DEFAULT, alpha1=ALPHA_DEFAULT,
                 alpha2=ALPHA_DEFAULT, delta=DELTA_DEFAULT, candidates=None, metric_params=None, batch_size=1000,
                 seed=None, workers=None, threads=None, address=None, output=None, resume=False, max_attempts=3,
                 progress=False, smoother_options=None, bounds="exact"):
    r"""Certify every input of a dataset on Ray workers; yield ``(index, Certificate)`` as they complete.

    Each certificate carries the guarantee of :meth:`cs_fast.CenterSmoothing.certify`
    (with probability at least ``1 - failure_probability`` over its own
    sampling); inputs are certified with independent seeds
    :func:`input_seed` ``(seed, index)``.

    Parameters
    ----------
    model_factory : str, callable or WorkerPool
        ``'module:callable'`` naming a zero-argument function that builds the
        model, or such a function itself (picklable). Called once per worker.
        Wrap a plain model function ``f`` as ``ImportedCallable('mod:f')``.
        A :class:`WorkerPool` reuses its workers (``workers``, ``threads`` and
        ``address`` must then be None: the pool has them).
    inputs : sequence of arrays
        Indexable by ``int`` (a numpy array or torch tensor with inputs on the
        first axis, or a list of them).
    metric, sigma, metric_params, batch_size, candidates, bounds, n, m, alpha1, alpha2, delta
        As :class:`cs_fast.CenterSmoothing` and its ``certify``; an ``n`` or
        ``m`` that can never certify under ``bounds`` is refused in the
        driver, before any worker starts (:func:`cs_fast.bounds.require_certifiable`).
    eps1 : float or sequence of float
        One certificate per input and eps1 value (in that order).
    seed : int, optional
        The run seed; None draws fresh OS entropy (recorded in each
        certificate through its per-input seed).
    workers : int, optional
        Number of workers: by default one per GPU Ray sees (``num_gpus=1``
        each), or one per CPU core.
    threads : int, optional
        numba, torch, OpenMP and BLAS threads per worker (default
        ``cores // workers``; workers x threads must not exceed the cores).
    address : str, optional
        ``'auto'`` or ``'ray://host:port'`` to join a cluster; None starts an
        embedded local Ray (with :data:`LOCAL_SYSTEM_CONFIG`) and stops it at the end.
    output : path, optional
        JSON-lines file the records are appended to (flushed and fsynced each).
    resume : bool
        Keep the records of ``output`` whose input digest matches and
        certify only the other inputs (changed inputs and earlier errors).
    max_attempts : int
        Tries per input when its worker process dies while certifying it (an
        input only queued on a worker that dies is not charged a try).

    Yields
    ------
    (int, Certificate or FailedInput)
        In completion order. Inputs skipped by ``resume`` are not yielded.

    Notes
    -----
    Each worker holds up to two inputs while more inputs wait than there are
    workers (one certifying, one queued behind it), so that it starts the next
    input as soon as it finishes one instead of idling while the driver
    records the result and sends another; near the end each holds one, so
    that no input waits behind another while a worker is free.
    """
    eps1_list = [float(e) for e in (eps1 if np.ndim(eps1) else [eps1])]
    if not eps1_list:
        raise ValueError("eps1: received an empty sequence; expected at least one radius")
    count = len(inputs)
    if count == 0:
        raise ValueError("inputs: received 0 inputs; expected at least one")
    max_attempts = check_int(max_attempts, "max_attempts")
    if workers is not None:
        workers = check_int(workers, "workers")
    if threads is not None:
        threads = check_int(threads, "threads")
    pool = model_factory if isinstance(model_factory, WorkerPool) else None
    if pool is not None:
        for name, value in (("workers", workers), ("threads", threads), ("address", address)):
            if value is not None:
                raise ValueError(f"{name}: received {value!r} with a WorkerPool; expected None "
                                 "(the pool's workers are already placed)")
        if pool.actors is None:
            raise ValueError("model_factory: received a closed WorkerPool; expected an open one")
    if resume and output is None:
        raise ValueError("resume: requires output, the results file to resume")
    run_seed = np.random.SeedSequence().entropy if seed is None else check_int(seed, "seed", minimum=0)
    smoother_kwargs = dict(metric=metric, sigma=sigma, metric_params=metric_params, batch_size=batch_size,
                           candidates=candidates, bounds=bounds, **(smoother_options or {}))
    certify_kwargs = dict(n=n, m=m, alpha1=alpha1, alpha2=alpha2, delta=delta)
    # Fail fast, in the driver, on parameters every worker would reject.
    _check_in_driver(smoother_kwargs, certify_kwargs, eps1_list)
    digest_params = dict(smoother_kwargs, **certify_kwargs, eps1=eps1_list, run_seed=run_seed,
                         model=pool.model_name if pool is not None else _factory_name(model_factory))
    digests = [input_digest(inputs[i], dict(digest_params, seed=input_seed(run_seed, i))) for i in range(count)]

    results = ResultsFile(output) if output is not None else None
    todo = list(range(count))
    if results is not None:
        kept = {}
        if resume:
            # An input is done when it has one matching "ok" record per eps1, in order.
            kept = {i: rs for i, rs in results.load().items()
                    if 0 <= i < count and [r.get("eps1") for r in rs] == eps1_list
                    and all(r.get("digest") == digests[i] and r.get("status") == "ok" for r in rs)}
        results.rewrite(kept)  # drops stale, changed and error records (and a torn last line)
        todo = [i for i in range(count) if i not in kept]
    if not todo:
        return
    own_pool = pool is None
    try:
        if own_pool:
            pool = WorkerPool(model_factory, workers=workers, threads=threads, address=address)
        yield from _run_pool(pool, inputs, todo, eps1_list, run_seed, digests, smoother_kwargs, certify_kwargs,
                             results, max_attempts, progress)
    finally:
        if results is not None:
            results.close()
        if own_pool and pool is not None:
            pool.close()


def _run_pool(pool, inputs, todo, eps1_list, run_seed, digests, smoother_kwargs, certify_kwargs, results,
              max_attempts, progress):
    from collections import deque

    from tqdm.auto import tqdm

    ray = pool.ray
    # The parameters travel once, through the object store; each task passes the reference.
    kwargs_ref = ray.put(smoother_kwargs)
    certify_ref = ray.put(certify_kwargs)
    queue = list(reversed(todo))  # pop() takes the smallest index first
    attempts = {i: 0 for i in todo}
    held = {actor: deque() for actor in pool.actors}  # actor -> its futures, oldest (the one running) first
    running = {}  # future -> (actor, index)

    def submit(actor):
        index = queue.pop()
        attempts[index] += 1
        future = actor.certify.remote(index, inputs[index], eps1_list, input_seed(run_seed, index), kwargs_ref,
                                      certify_ref)
        running[future] = (actor, index)
        held[actor].append(future)

    def fill():
        for depth in (1, 2):
            for actor in list(held):
                while queue and len(held[actor]) < depth and (depth == 1 or len(queue) > len(held)):
                    submit(actor)

    bar = tqdm(total=len(todo), desc="inputs", unit="input", disable=not progress)
    try:
        while queue or running:
            fill()
            done, _ = ray.wait(list(running), num_returns=1)
            future = done[0]
            actor, index = running.pop(future)
            try:
                outcome = ray.get(future)
            except ray.exceptions.RayActorError as err:
                # The worker died (killed, out of memory, node lost): a fresh one takes its place, and
                # its inputs go back to the queue. Only the one it was certifying (the oldest) is
                # charged the try; those queued behind it never started.
                lost = held.pop(actor)
                held[pool.replace(actor)] = deque()
                failed = None
                for k, f in enumerate(lost):
                    i = index if f == future else running.pop(f)[1]
                    if k > 0:
                        attempts[i] -= 1
                    if k == 0 and attempts[i] >= max_attempts:
                        failed = i
                    else:
                        queue.append(i)
                queue.sort(reverse=True)
                if failed is None:
                    continue
                index = failed
                outcome = [("error", {"error": f"worker died {attempts[index]} times; last: "
                                               f"{type(err).__name__}: {str(err).splitlines()[0]}",
                                      "source": "worker"})]
            else:
                held[actor].popleft()
            fill()  # before recording: the workers go on while the driver writes and the caller runs
            for status, body in outcome:
                record = {"input": index, "run_seed": run_seed, "digest": digests[index], "status": status}
                if status == "ok":
                    record.update(body)
                    result = Certificate.from_dict(body)
                else:
                    body = dict(body, attempts=attempts[index])
                    record.update(body)
                    result = FailedInput(index, body["error"], body["source"], body["attempts"])
                if results is not None:
                    results.append(record)
                yield index, result
            bar.update(1)
    finally:
        bar.close()
        for future in running:  # an interrupted run: drop what the workers still hold
            try:
                ray.cancel(future)
            except Exception:  # noqa: BLE001 - already finished, or its worker is gone: nothing to drop
                pass
        # Killed workers were replaced in the pool; a dead one is not waited for.


def _check_in_driver(smoother_kwargs, certify_kwargs, eps1_list):
    """Raise, before any worker starts, what every worker would raise: bad settings, an n or m that never certifies."""
    smoother = CenterSmoothing(lambda b: b, seed=0, **smoother_kwargs)
    for eps1 in eps1_list:
        require_certifiable(eps1=eps1, sigma=smoother.sigma, bounds=smoother.bounds, **certify_kwargs)


def certify_split(model_factory, x, *, metric, sigma, eps1, n=N_DEFAULT, m=M_DEFAULT, alpha1=ALPHA_DEFAULT,
                  alpha2=ALPHA_DEFAULT, delta=DELTA_DEFAULT, candidates=None, metric_params=None, batch_size=1000,
                  seed=None, workers=None, threads=None, address=None, bounds="exact"):
    r"""One certificate whose ``m`` certification samples are spread over the workers.

    The center is picked and checked on one worker; the ``ceil(m /
    batch_size)`` certification batches are split into contiguous ranges, one
    per worker, each replaying the noise stream up to its range; the driver
    takes the order statistic of all ``m`` distances at once. The result is
    the certificate of ``CenterSmoothing(..., seed=seed).certify`` in one
    process, bit for bit (for a model deterministic at a fixed thread count).
    ``model_factory`` may be a :class:`WorkerPool` (then ``workers``,
    ``threads`` and ``address`` must be None). ``bounds`` as in
    :class:`cs_fast.CenterSmoothing`.
    """
    if seed is None:
        seed = np.random.SeedSequence().entropy
    smoother_kwargs = dict(metric=metric, sigma=sigma, metric_params=metric_params, batch_size=batch_size,
                           candidates=candidates, bounds=bounds)
    certify_kwargs = dict(n=n, m=m, alpha1=alpha1, alpha2=alpha2, delta=delta)
    _check_in_driver(smoother_kwargs, certify_kwargs, [eps1])
    own_pool = not isinstance(model_factory, WorkerPool)
    if not own_pool:
        for name, value in (("workers", workers), ("threads", threads), ("address", address)):
            if value is not None:
                raise ValueError(f"{name}: received {value!r} with a WorkerPool; expected None")
    pool = WorkerPool(model_factory, workers=workers, threads=threads, address=address) if own_pool \
        else model_factory
    ray = pool.ray
    try:
        actors = pool.actors
        partial = ray.get(actors[0].center.remote(x, eps1, seed, smoother_kwargs, certify_kwargs))
        if partial.certificate is not None:  # abstained before certification
            return partial.certificate
        nbatches = math.ceil(m / batch_size)
        edges = np.linspace(0, nbatches, len(actors) + 1).round().astype(int)
        futures = [actors[w].distances.remote(x, partial.center_sample, seed, m, int(edges[w]), int(edges[w + 1]),
                                              smoother_kwargs)
                   for w in range(len(actors)) if edges[w + 1] > edges[w]]
        dists = np.concatenate(ray.get(futures))
        smoother = CenterSmoothing(lambda b: b, seed=seed, **smoother_kwargs)
        return smoother.finish_certificate(partial, dists)
    finally:
        if own_pool:
            pool.close()


def summary_line(results, seconds):
    """``certified, abstained, errors, certificates per second`` of a list of yielded results."""
    certified = sum(1 for _, r in results if isinstance(r, Certificate) and not r.abstained)
    abstained = sum(1 for _, r in results if isinstance(r, Certificate) and r.abstained)
    errors = sum(1 for _, r in results if isinstance(r, FailedInput))
    rate = len(results) / seconds if seconds > 0 else math.inf
    return (f"{certified} certified, {abstained} abstained, {errors} errors; "
            f"{len(results)} records in {seconds:.1f} s ({rate:.3g} certificates/s)")
