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

Ray is imported only here and only when a function needs it (the
``distributed`` extra: ``pip install 'cs_fast[distributed]'``). Without an
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
from .smoothing import ALPHA_DEFAULT, DELTA_DEFAULT, M_DEFAULT, N_DEFAULT, Certificate, CenterSmoothing

RAY_INSTALL = "pip install 'cs_fast[distributed]'  (or: pip install ray)"


# --------------------------------------------------------------------------- seeds and digests


def input_seed(run_seed, index):
    """The seed of input ``index`` in a run seeded with ``run_seed``: a 128-bit int.

    Derived with :class:`numpy.random.SeedSequence` from ``(run_seed, index)``,
    so inputs get independent noise and the value does not depend on which
    worker certifies the input or when. Pass it as ``CenterSmoothing(seed=...)``
    to reproduce that input's certificate in-process.
    """
    words = np.random.SeedSequence(entropy=int(run_seed), spawn_key=(int(index),)).generate_state(4, np.uint32)
    return int(sum(int(w) << (32 * k) for k, w in enumerate(words)))


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
    """Holds one model and one CenterSmoothing per process (a Ray actor)."""

    def __init__(self, factory, smoother_kwargs, threads):
        if threads is not None:
            import numba
            import torch

            numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
            torch.set_num_threads(threads)
        self.model = factory()
        self.kwargs = smoother_kwargs

    def pid(self):
        return os.getpid()

    def certify(self, index, x, eps1_list, seed, certify_kwargs):
        """Records (dicts) for one input, one per eps1; errors become error records."""
        try:
            smoother = CenterSmoothing(_ModelCall(self.model), seed=seed, **self.kwargs)
            return [("ok", smoother.certify(x, eps1, **certify_kwargs).to_dict()) for eps1 in eps1_list]
        except _ModelError as err:
            return [("error", {"error": err.text, "source": "model"})]
        except Exception as err:  # the input's checks (ValueError/TypeError) or anything else of cs_fast's
            return [("error", {"error": f"{type(err).__name__}: {err}", "source": "input"})]

    # ---------------------------------------------------------------- split certification

    def center(self, x, eps1, seed, certify_kwargs):
        """Everything of the certificate but R (:meth:`CenterSmoothing.certify_center`)."""
        smoother = CenterSmoothing(_ModelCall(self.model), seed=seed, **self.kwargs)
        return smoother.certify_center(x, eps1, **certify_kwargs)

    def distances(self, x, center, seed, m, first_batch, stop_batch):
        """Certification distances of batches [first_batch, stop_batch) (:meth:`CenterSmoothing.certification_distances`)."""
        smoother = CenterSmoothing(_ModelCall(self.model), seed=seed, **self.kwargs)
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


# --------------------------------------------------------------------------- the run


def _ray():
    try:
        import ray
    except ImportError:
        raise ImportError(f"cs_fast.distributed needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


class _Cluster:
    """Ray started (and later stopped) by cs_fast, or joined at ``address``."""

    def __init__(self, address, cores):
        self.ray = _ray()
        self.started = False
        if not self.ray.is_initialized():
            if address is None:
                self.ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False,
                              configure_logging=False)
            else:
                self.ray.init(address=address, log_to_driver=False, configure_logging=False)
            self.started = True

    def resources(self):
        return self.ray.cluster_resources()

    def close(self):
        if self.started:
            self.ray.shutdown()


def _plan_workers(resources, workers):
    """(number of workers, CPUs per worker, GPUs per worker) for the cluster's ``resources``.

    One worker per GPU (``num_gpus=1`` each) where Ray sees GPUs, else one per
    CPU; each worker gets ``cpus // workers`` CPUs as its numba and torch
    threads, so that workers x threads <= cores.
    """
    gpus = int(resources.get("GPU", 0))
    cpus = max(1, int(resources.get("CPU", os.cpu_count() or 1)))
    kind, available = ("GPUs", gpus) if gpus else ("CPUs", cpus)
    count = available if workers is None else workers
    if count > available:
        raise ValueError(f"workers: received {workers}; expected at most {available}, the {kind} Ray sees "
                         "(a worker holds one GPU, or at least one CPU)")
    return count, max(1, cpus // count), (1 if gpus else 0)


def certify_many(model_factory, inputs, *, metric, sigma, eps1, n=N_DEFAULT, m=M_DEFAULT, alpha1=ALPHA_DEFAULT,
                 alpha2=ALPHA_DEFAULT, delta=DELTA_DEFAULT, candidates=None, metric_params=None, batch_size=1000,
                 seed=None, workers=None, address=None, output=None, resume=False, max_attempts=3,
                 progress=False, smoother_options=None):
    r"""Certify every input of a dataset on Ray workers; yield ``(index, Certificate)`` as they complete.

    Each certificate carries the guarantee of :meth:`cs_fast.CenterSmoothing.certify`
    (with probability at least ``1 - failure_probability`` over its own
    sampling); inputs are certified with independent seeds
    :func:`input_seed` ``(seed, index)``.

    Parameters
    ----------
    model_factory : str or callable
        ``'module:callable'`` naming a zero-argument function that builds the
        model, or such a function itself (picklable). Called once per worker.
        Wrap a plain model function ``f`` as ``ImportedCallable('mod:f')``.
    inputs : sequence of arrays
        Indexable by ``int`` (a numpy array or torch tensor with inputs on the
        first axis, or a list of them).
    metric, sigma, metric_params, batch_size, candidates, n, m, alpha1, alpha2, delta
        As :class:`cs_fast.CenterSmoothing` and its ``certify``.
    eps1 : float or sequence of float
        One certificate per input and eps1 value (in that order).
    seed : int, optional
        The run seed; None draws fresh OS entropy (recorded in each
        certificate through its per-input seed).
    workers : int, optional
        Number of workers: by default one per GPU Ray sees (``num_gpus=1``
        each), or one per CPU core, each worker getting ``cores // workers``
        numba and torch threads.
    address : str, optional
        ``'auto'`` or ``'ray://host:port'`` to join a cluster; None starts an
        embedded local Ray and stops it at the end.
    output : path, optional
        JSON-lines file the records are appended to (flushed and fsynced each).
    resume : bool
        Keep the records of ``output`` whose input digest matches and
        certify only the other inputs (changed inputs and earlier errors).
    max_attempts : int
        Tries per input when its worker process dies.

    Yields
    ------
    (int, Certificate or FailedInput)
        In completion order. Inputs skipped by ``resume`` are not yielded.
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
    if resume and output is None:
        raise ValueError("resume: requires output, the results file to resume")
    run_seed = np.random.SeedSequence().entropy if seed is None else check_int(seed, "seed", minimum=0)
    smoother_kwargs = dict(metric=metric, sigma=sigma, metric_params=metric_params, batch_size=batch_size,
                           candidates=candidates, **(smoother_options or {}))
    certify_kwargs = dict(n=n, m=m, alpha1=alpha1, alpha2=alpha2, delta=delta)
    # Fail fast, in the driver, on parameters every worker would reject.
    CenterSmoothing(lambda b: b, seed=0, **smoother_kwargs)
    digest_params = dict(smoother_kwargs, **certify_kwargs, eps1=eps1_list, run_seed=run_seed,
                         model=_factory_name(model_factory))
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
    factory = _factory(model_factory)

    cluster = _Cluster(address, os.cpu_count())
    try:
        nworkers, threads, gpus = _plan_workers(cluster.resources(), workers)
        nworkers = min(nworkers, len(todo))
        yield from _run_pool(cluster.ray, factory, inputs, todo, eps1_list, run_seed, digests, smoother_kwargs,
                             certify_kwargs, nworkers, threads, gpus, results, max_attempts, progress)
    finally:
        if results is not None:
            results.close()
        cluster.close()


def _actor_class(ray, threads, gpus):
    options = dict(num_cpus=threads, num_gpus=gpus, max_restarts=0, max_task_retries=0)
    env = {k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                     "NUMBA_NUM_THREADS")}
    return ray.remote(_Worker).options(runtime_env={"env_vars": env}, **options)


def _run_pool(ray, factory, inputs, todo, eps1_list, run_seed, digests, smoother_kwargs, certify_kwargs,
              nworkers, threads, gpus, results, max_attempts, progress):
    from tqdm.auto import tqdm

    Actor = _actor_class(ray, threads, gpus)
    new_actor = lambda: Actor.remote(factory, smoother_kwargs, threads)  # noqa: E731
    idle = [new_actor() for _ in range(nworkers)]
    queue = list(reversed(todo))  # pop() takes the smallest index first
    attempts = {i: 0 for i in todo}
    running = {}  # future -> (actor, index)
    bar = tqdm(total=len(todo), desc="inputs", unit="input", disable=not progress)
    try:
        while queue or running:
            while queue and idle:
                index = queue.pop()
                actor = idle.pop()
                attempts[index] += 1
                x = inputs[index]
                future = actor.certify.remote(index, x, eps1_list, input_seed(run_seed, index), certify_kwargs)
                running[future] = (actor, index)
            done, _ = ray.wait(list(running), num_returns=1)
            future = done[0]
            actor, index = running.pop(future)
            try:
                outcome = ray.get(future)
            except ray.exceptions.RayActorError as err:
                # The worker died (killed, out of memory, node lost): retry the input on a fresh worker.
                idle.append(new_actor())
                if attempts[index] < max_attempts:
                    queue.append(index)
                    continue
                outcome = [("error", {"error": f"worker died {attempts[index]} times; last: "
                                               f"{type(err).__name__}: {str(err).splitlines()[0]}",
                                      "source": "worker"})]
            else:
                idle.append(actor)
            for status, body in outcome:
                record = {"input": index, "digest": digests[index], "status": status}
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
        for actor in idle + [a for a, _ in running.values()]:
            ray.kill(actor)


def certify_split(model_factory, x, *, metric, sigma, eps1, n=N_DEFAULT, m=M_DEFAULT, alpha1=ALPHA_DEFAULT,
                  alpha2=ALPHA_DEFAULT, delta=DELTA_DEFAULT, candidates=None, metric_params=None, batch_size=1000,
                  seed=None, workers=None, address=None):
    r"""One certificate whose ``m`` certification samples are spread over the workers.

    The center is picked and checked on one worker; the ``ceil(m /
    batch_size)`` certification batches are split into contiguous ranges, one
    per worker, each replaying the noise stream up to its range; the driver
    takes the order statistic of all ``m`` distances at once. The result is
    the certificate of ``CenterSmoothing(..., seed=seed).certify`` in one
    process, bit for bit (for a model deterministic at a fixed thread count).
    """
    if seed is None:
        seed = np.random.SeedSequence().entropy
    smoother_kwargs = dict(metric=metric, sigma=sigma, metric_params=metric_params, batch_size=batch_size,
                           candidates=candidates)
    certify_kwargs = dict(n=n, m=m, alpha1=alpha1, alpha2=alpha2, delta=delta)
    factory = _factory(model_factory)
    cluster = _Cluster(address, os.cpu_count())
    ray = cluster.ray
    try:
        nworkers, threads, gpus = _plan_workers(cluster.resources(), workers)
        Actor = _actor_class(ray, threads, gpus)
        actors = [Actor.remote(factory, smoother_kwargs, threads) for _ in range(nworkers)]
        partial = ray.get(actors[0].center.remote(x, eps1, seed, certify_kwargs))
        if partial.certificate is not None:  # abstained before certification
            return partial.certificate
        nbatches = math.ceil(m / batch_size)
        edges = np.linspace(0, nbatches, nworkers + 1).round().astype(int)
        futures = [actors[w].distances.remote(x, partial.center_sample, seed, m, int(edges[w]), int(edges[w + 1]))
                   for w in range(nworkers) if edges[w + 1] > edges[w]]
        dists = np.concatenate(ray.get(futures))
        smoother = CenterSmoothing(lambda b: b, seed=seed, **smoother_kwargs)
        return smoother.finish_certificate(partial, dists)
    finally:
        cluster.close()


def summary_line(results, seconds):
    """``certified, abstained, errors, certificates per second`` of a list of yielded results."""
    certified = sum(1 for _, r in results if isinstance(r, Certificate) and not r.abstained)
    abstained = sum(1 for _, r in results if isinstance(r, Certificate) and r.abstained)
    errors = sum(1 for _, r in results if isinstance(r, FailedInput))
    rate = len(results) / seconds if seconds > 0 else math.inf
    return (f"{certified} certified, {abstained} abstained, {errors} errors; "
            f"{len(results)} records in {seconds:.1f} s ({rate:.3g} certificates/s)")
