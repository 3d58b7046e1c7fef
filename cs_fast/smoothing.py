r"""Center smoothing and its certificates (paper Algorithms 1 and 2).

Smooth: draw ``n`` outputs :math:`f(x + \epsilon)`, :math:`\epsilon \sim
N(0, \sigma^2 I)`; the center is the sample with the smallest lower median
distance to all of them (a :math:`\beta`-approximate minimum enclosing ball of
half the samples, :math:`\beta = 2\gamma`) and ``r`` is that median. A fresh
sample of ``n`` checks the ball's mass: ``K`` of them lie within ``r``, and
:func:`cs_fast.bounds.center_check` decides (exact binomial test, or the paper's
Hoeffding margins :math:`\Delta_1`, :math:`\Delta_2 = 1/2 - (K/n - \Delta_1)`).

Certify: a third, fresh sample of ``m`` distances to the center gives ``R``,
their ``k``-th smallest with ``k`` from :func:`cs_fast.bounds.certification_rank`
(the exact binomial rank, or the paper's DKW level ``q``), and
:math:`\epsilon_{out} = \gamma(1 + \beta) R`.

The rule set (``bounds="exact"`` or ``"paper"``) is fixed when the smoother is
built, before any sampling; the samples do not depend on it, so the same seed
gives the same center, count and distances under both.
"""

import copy
import math
from dataclasses import dataclass, fields
from typing import Any, Optional

import numpy as np

from . import _serialize, bounds
from . import bounds as _bounds  # the module, where a method's argument is also called bounds
from ._checks import check_int, check_nonnegative, check_open_interval, describe
from .bindings.backend import resolve
from .bindings.distance import min_median
from .metrics import check_metric_params, get_metric
from .sampler import Sampler

from .bounds import ALPHA_DEFAULT, DELTA_DEFAULT, M_DEFAULT, N_DEFAULT  # noqa: E402  (re-exported)


def failure_probability(alpha1, alpha2=0.0, candidates=None):
    r"""Probability that a result's guarantee fails: :math:`\alpha_1 + \alpha_2`, plus :math:`2^{-k}` for ``candidates=k``."""
    return alpha1 + alpha2 + (0.0 if candidates is None else 2.0 ** -candidates)


def check_candidates(candidates, alpha, allow_weak=False, what="alpha1 + alpha2"):
    r"""Refuse a Smooth-HD ``candidates=k`` whose :math:`2^{-k}` exceeds the stated ``alpha``.

    The candidate center is within the guarantee only if one of ``k``
    candidates falls in the half-mass ball, which fails with probability at
    most :math:`2^{-k}`; a ``k`` for which that term exceeds the rest of the
    failure probability would make the certificate's confidence mostly a
    property of ``k`` (``k = 7`` is the smallest for the default
    :math:`\alpha_1 + \alpha_2 = 0.01`; the paper uses ``k = 30``).
    """
    if candidates is None or allow_weak or not alpha > 0 or 2.0 ** -candidates <= alpha:
        return  # (a non-positive alpha is refused by the alpha checks themselves)
    need = max(1, math.ceil(-math.log2(alpha)))
    raise ValueError(
        f"candidates: received {candidates}; 2**-{candidates} = {2.0 ** -candidates:.3g} exceeds {what} = "
        f"{alpha:.3g}, so the Smooth-HD center alone could fail more often than the stated confidence. "
        f"Expected candidates >= {need} (the paper uses 30), or allow_weak_candidates=True to accept a failure "
        f"probability of {alpha + 2.0 ** -candidates:.3g}"
    )


class _Record:
    """``to_dict``/``from_dict`` of the result dataclasses below."""

    #: Keys of :meth:`to_dict` computed from the fields (checked, not stored, by :meth:`from_dict`).
    _DERIVED = ("failure_probability",)
    #: Keys that ``cs-fast certify`` and :func:`cs_fast.distributed.certify_many` add around a
    #: certificate in their JSON lines; :meth:`from_dict` reads such a line as written.
    _ENVELOPE = ("input", "run_seed", "digest", "status")

    def to_dict(self):
        """The result as a JSON-ready dict: every field, then the derived ``failure_probability`` (and ``vacuous``).

        Arrays and tensors (``center``, metric weights) become ``{"array",
        "dtype", "shape", "type"}``; :meth:`from_dict` restores them (torch
        tensors on the CPU, GPU arrays as numpy arrays).
        """
        out = {f.name: _serialize.encode(getattr(self, f.name)) for f in fields(self)}
        out.update({k: _serialize.encode(getattr(self, k)) for k in self._DERIVED})
        return out

    @classmethod
    def from_dict(cls, data):
        """The result recorded by :meth:`to_dict` (also after a JSON round trip).

        Also reads a JSON line of ``cs-fast certify`` or of the distributed
        results file as written (their ``input``, ``run_seed``, ``digest``
        and ``status`` keys are read past). Records written before the rule sets existed (no
        ``bounds`` key) were made with the paper's bounds: they come back as
        ``bounds="paper"`` with ``count``, ``threshold``, ``rank`` and
        ``level`` recomputed from their fields.

        Raises
        ------
        ValueError
            When a field is missing or unknown, or a derived value does not
            match the one recomputed from the fields.
        """
        if not isinstance(data, dict):
            raise TypeError(f"data: received {describe(data)}; expected a dict from {cls.__name__}.to_dict()")
        if data.get("status", "ok") != "ok":
            raise ValueError(f"data: a record with status {data['status']!r} ({data.get('error', 'no error text')}); "
                             f"expected a certificate's record (status 'ok')")
        data = _upgrade_record(data)
        names = [f.name for f in fields(cls)]
        missing = [k for k in names if k not in data]
        unknown = sorted(set(data) - set(names) - set(cls._DERIVED) - set(cls._ENVELOPE))
        if missing or unknown:
            raise ValueError(f"data: {cls.__name__} fields missing {missing}, unknown {unknown}; expected the keys "
                             f"of {cls.__name__}.to_dict()")
        values = {k: _serialize.decode(data[k], k) for k in names}
        values["spawn_key"] = tuple(values["spawn_key"])
        if isinstance(values["seed"], list):
            values["seed"] = tuple(values["seed"])
        result = cls(**values)
        for k in cls._DERIVED:
            if k in data and data[k] != getattr(result, k):
                raise ValueError(f"data: {k} is {data[k]!r} but the fields give {getattr(result, k)!r}")
        return result

    def seed_sequence(self):
        """The :class:`numpy.random.SeedSequence` this result's noise was drawn from.

        ``CenterSmoothing(..., seed=result.seed_sequence())`` (or ``seed=result.seed``
        when ``spawn_key`` is empty) with the same settings reproduces the result bit for bit.
        """
        return np.random.SeedSequence(self.seed, spawn_key=self.spawn_key)


def _upgrade_record(data):
    """A record of a version before ``bounds`` existed, completed as the paper's rules made it."""
    if any(k in data for k in ("bounds", "count", "threshold", "rank", "level")) or "delta2" not in data \
            or "n" not in data:
        return data
    data = dict(data, bounds="paper")
    n = data["n"]
    # delta2 = 1/2 - (K/n - delta1) in float64: K comes back exactly for any n below 2**40
    data["count"] = int(round((0.5 - data["delta2"] + data["delta1"]) * n))
    data["threshold"] = bounds.paper_threshold(n, data["delta"], data["alpha1"])
    if "m" in data:  # a certificate
        rank = None if data.get("R") is None else bounds.order_rank(data["q"], data["m"])
        data.update(rank=rank, level=None if rank is None else rank / data["m"])
    return data


@dataclass(frozen=True)
class SmoothResult(_Record):
    r"""Outcome of :meth:`CenterSmoothing.smooth`, with everything needed to re-check or reproduce it.

    Attributes
    ----------
    center : array or None
        The smoothed output (one model output, the caller's array type), or
        None when abstained.
    radius : float
        ``r``, the center's lower median distance to the ``n`` samples.
    delta1, delta2 : float
        Hoeffding margin and mass deficit of the check (see module docstring).
    abstained : bool
    reason : str or None
        Why it abstained; None otherwise.
    metric : str
        The registered metric name.
    metric_params : dict
        Its parameters (e.g. ``channel_norm``, sqfeat ``weights``).
    sigma, n, alpha1, delta :
        The settings of the run.
    candidates : int or None
        Smooth-HD's number of candidate centers (None: the exact min-median center).
    gamma, beta : float
        The metric's relaxed-triangle factor and the center's approximation factor.
    seed, spawn_key :
        The noise's :class:`numpy.random.SeedSequence` entropy and spawn key
        (fresh OS entropy when the smoother's seed is None); see :meth:`seed_sequence`.
    bounds : str
        The rule set, ``"exact"`` or ``"paper"`` (:mod:`cs_fast.bounds`).
    count : int
        ``K``, the fresh samples (of ``n``) within ``radius`` of the center.
    threshold : int or None
        The smallest ``K`` the center check passes with (None: ``n`` is too
        small for ``delta`` at ``alpha1``, no ``K`` passes).
    failure_probability : float
        Property: :math:`\alpha_1`, plus :math:`2^{-k}` with ``candidates=k``.

    Examples
    --------
    >>> smoother = cs_fast.CenterSmoothing(lambda x: 2.0 * x, "l2", sigma=0.1, seed=1)
    >>> res = smoother.smooth(np.array([1.0, -1.0]), n=1000)
    >>> res.abstained, res.count >= res.threshold, res.center.shape
    (False, True, (2,))
    """

    center: Any
    radius: float
    delta1: float
    delta2: float
    abstained: bool
    reason: Optional[str]
    metric: str
    metric_params: dict
    sigma: float
    n: int
    alpha1: float
    delta: float
    candidates: Optional[int]
    gamma: float
    beta: float
    seed: Any
    spawn_key: tuple
    bounds: str
    count: Optional[int]
    threshold: Optional[int]

    @property
    def failure_probability(self):
        return failure_probability(self.alpha1, 0.0, self.candidates)


@dataclass(frozen=True)
class Certificate(SmoothResult):
    r"""Outcome of :meth:`CenterSmoothing.certify`: a :class:`SmoothResult` and the certificate.

    With probability at least ``1 - failure_probability`` (:math:`\alpha_1 +
    \alpha_2`, plus :math:`2^{-k}` for ``candidates=k``) over the sampling,
    every input :math:`x'` with :math:`\|x' - x\|_2 \le \epsilon_1` has a
    smoothed output within ``eps_out`` of ``center``. ``eps_out``, ``R`` and
    ``smoothing_error`` are None when abstained; ``reason`` says why. It has
    every attribute of :class:`SmoothResult` and those below.

    Attributes
    ----------
    eps1, m, alpha2 : the settings of the certification.
    p : float
        The mass the certified ball must hold (:func:`cs_fast.bounds.required_mass`).
    q : float or None
        ``bounds="paper"``: the DKW-corrected level :math:`p + \sqrt{\ln(1/\alpha_2)/(2m)}`
        (None with the exact bounds).
    rank : int or None
        ``k``: ``R`` is the ``k``-th smallest of the ``m`` distances
        (:func:`cs_fast.bounds.certification_rank`); None when abstained.
    level : float or None
        ``k / m``, the empirical mass of the certified ball (the role ``q``
        plays in the paper).
    R : float or None
        The ``rank``-th smallest of the ``m`` distances to the center.
    eps_out : float or None
        :math:`\gamma (1 + \beta) R`.
    smoothing_error : float or None
        Distance from the base model's output at ``x`` to the center.
    vacuous : bool
        Property: ``eps_out`` is at least the largest distance the metric can
        take (:attr:`cs_fast.metrics.Metric.upper_bound`), so the certificate
        says nothing. False when abstained or the metric is unbounded.

    Examples
    --------
    A certificate is a frozen record; its JSON form restores it exactly:

    >>> import json
    >>> smoother = cs_fast.CenterSmoothing(lambda x: 2.0 * x, "l2", sigma=0.1, seed=1)
    >>> cert = smoother.certify(np.array([1.0, -1.0]), eps1=0.1, n=1000, m=2000)
    >>> line = json.dumps(cert.to_dict())
    >>> cs_fast.Certificate.from_dict(json.loads(line)).to_dict() == cert.to_dict()
    True
    >>> cert.failure_probability  # alpha1 + alpha2
    0.01
    """

    _DERIVED = ("failure_probability", "vacuous")

    eps1: float
    m: int
    alpha2: float
    p: float
    q: Optional[float]
    rank: Optional[int]
    level: Optional[float]
    R: Optional[float]
    eps_out: Optional[float]
    smoothing_error: Optional[float]

    @property
    def failure_probability(self):
        return failure_probability(self.alpha1, self.alpha2, self.candidates)

    @property
    def vacuous(self):
        bound = get_metric(self.metric).upper_bound
        return bool(not self.abstained and bound is not None and self.eps_out >= bound)


@dataclass(frozen=True)
class CertificationStage:
    """A certificate before its ``m`` certification distances (:meth:`CenterSmoothing.certify_center`).

    Attributes
    ----------
    certificate : Certificate or None
        The final certificate when it abstained before certification.
    center_sample : array or None
        The center where the samples live (numpy, or a device array), for
        :meth:`CenterSmoothing.certification_distances`.
    rank : int or None
        The rank of ``R`` among the ``m`` distances.
    fields : dict
        The certificate's fields known so far.
    """

    certificate: Optional[Certificate]
    center_sample: Any
    rank: Optional[int]
    fields: dict


class _OnSampler:
    """A :class:`CenterSmoothing` attribute kept by its :class:`cs_fast.sampler.Sampler` (one copy of each setting)."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        return self if obj is None else getattr(obj.sampler, self.name)

    def __set__(self, obj, value):
        setattr(obj.sampler, self.name, value)


def _check_certify(smoother, x, eps1, n, m, alpha1, alpha2, delta):
    """The checked draw and arguments of a certification by ``smoother``, and the required mass ``p``."""
    draw = smoother.sampler.draw(x)
    eps1 = check_nonnegative(eps1, "eps1")
    n = check_int(n, "n")
    m = check_int(m, "m")
    alpha1 = check_open_interval(alpha1, "alpha1", 0.0, 1.0)
    alpha2 = check_open_interval(alpha2, "alpha2", 0.0, 1.0)
    delta = check_open_interval(delta, "delta", 0.0, 0.5)
    p = bounds.required_mass(delta, eps1, smoother.sigma)
    check_candidates(smoother.candidates, alpha1 + alpha2, smoother.allow_weak_candidates)
    return draw, eps1, n, m, alpha1, alpha2, delta, p


class CenterSmoothing:
    r"""Smooth and certify a model with structured outputs.

    :math:`\hat f(x)`, the center of :math:`f(x + \epsilon)`, :math:`\epsilon \sim N(0, \sigma^2 I)`
    (:meth:`smooth`), moves by at most :math:`\gamma (1 + \beta) R` for inputs within
    :math:`\epsilon_1` of ``x``, with probability at least :math:`1 - \alpha_1 - \alpha_2`
    (:meth:`certify`). Its samples come from a :class:`cs_fast.sampler.Sampler`.

    Parameters
    ----------
    model : callable
        The base model ``f``, called on batches of noisy copies of ``x``:
        ``model(x[None] + sigma * noise)``, at most ``batch_size`` copies per
        call, the batch on a new first axis that cs_fast adds (pass one input
        ``x``, not a batch). It must return one output per copy, batch first:
        shape ``(b, ...)`` for ``b`` copies, every output of the same shape.

        What goes in: a torch tensor ``x`` gives torch batches on its device
        and in its dtype; a numpy ``x`` gives numpy batches, except that a
        ``torch.nn.Module`` always gets torch tensors, on the device and in the
        dtype of its first parameter (so a numpy ``x`` works with a module
        too). What may come out: numpy arrays, torch tensors (CPU or CUDA),
        CuPy arrays or numba device arrays. Device outputs stay on the GPU
        through smoothing and certification (only scalars come to the host).
        The center is returned as the model's own output type, on its device.
        The model runs under ``torch.no_grad()`` when the batches are torch
        tensors.
    metric : str
        Output distance, see :func:`cs_fast.available_metrics`.
    sigma : float
        Standard deviation of the Gaussian input noise, > 0.
    metric_params : dict, optional
        Parameters of the metric (``channel_norm``, ``weights``).
    batch_size : int
        Inputs per model call.
    backend : {'auto', 'cpu', 'cuda'}
    seed : int or numpy.random.SeedSequence, optional
        None (the default) draws fresh OS entropy for every :meth:`smooth`/
        :meth:`certify` call, so that nobody can prepare an input against the
        noise (the guarantee is per query, over fresh noise). The entropy used
        is recorded in the result (``seed``, ``spawn_key``); passing it back
        reproduces the result bit for bit. With a seed, every call draws its
        noise from it: the same seed gives the same result.
    progress : bool
        Show a tqdm progress bar over batches.
    candidates : int, optional
        Smooth-HD: pick the center among ``candidates`` extra samples by their
        median distance to the ``n`` samples (O(k n) distances instead of
        O(n^2)). The beta = 2 gamma guarantee then needs one candidate in the
        half-mass ball, which fails with probability at most ``2**-candidates``,
        added to the result's ``failure_probability``. A ``k`` with ``2**-k``
        above ``alpha1 + alpha2`` (``alpha1`` for :meth:`smooth`) is refused
        unless ``allow_weak_candidates=True``; the paper's ``k = 30`` adds
        about 1e-9.
    allow_weak_candidates : bool
        Accept such a ``k`` (the certificate's ``failure_probability`` says
        how weak it is).
    bounds : {'exact', 'paper'}
        The statistics that turn samples into a certificate
        (:mod:`cs_fast.bounds`): ``"exact"`` (the default) uses exact binomial
        tails, ``"paper"`` the paper's Hoeffding and DKW inequalities. Both
        fail with probability at most ``alpha1 + alpha2``; on the same samples
        the exact ``R`` is never larger, and it certifies from far fewer
        samples (``cs_fast.bounds.plan``).

    Examples
    --------
    A "detector" whose box of side 2 follows its 2-D input; certify the
    Jaccard distance (1 - IoU) of the smoothed box within ``eps1 = 0.05``:

    >>> def boxes(x):  # (batch, 2) -> (batch, 4) boxes [x1, y1, x2, y2]
    ...     return np.concatenate([x - 1.0, x + 1.0], axis=1)
    >>> smoother = cs_fast.CenterSmoothing(boxes, "jaccard", sigma=0.05, seed=0)
    >>> cert = smoother.certify(np.zeros(2), eps1=0.05, n=4000, m=10_000)
    >>> cert.abstained, cert.bounds, cert.rank
    (False, 'exact', 8785)
    >>> print(f"{cert.eps_out:.3f}")  # every input within 0.05 keeps IoU >= 1 - 0.363 with the center
    0.363
    >>> cert.center.shape
    (4,)
    """

    # The sampler keeps these settings; they read and write through to it.
    model, metric, metric_params, sigma, batch_size, backend, seed, progress = (_OnSampler() for _ in range(8))

    def __init__(self, model, metric, sigma, *, metric_params=None, batch_size=1000, backend="auto",
                 seed=None, progress=False, candidates=None, allow_weak_candidates=False, bounds="exact"):
        if not callable(model):
            raise TypeError(f"model: received {describe(model)}; expected a callable from a batch of inputs to a batch of outputs")
        metric = get_metric(metric)
        metric_params = check_metric_params(metric, metric_params)
        self.sampler = Sampler(model, metric, sigma, metric_params=metric_params, batch_size=batch_size,
                               backend=backend, seed=seed, progress=progress)
        self.candidates = None if candidates is None else check_int(candidates, "candidates")
        if not isinstance(allow_weak_candidates, (bool, np.bool_)):
            raise TypeError(f"allow_weak_candidates: received {describe(allow_weak_candidates)}; expected a bool")
        self.allow_weak_candidates = bool(allow_weak_candidates)
        self.bounds = _bounds.check_bounds(bounds)
        self.gamma = metric.gamma
        self.beta = 2.0 * self.gamma

    def smooth(self, x, n=N_DEFAULT, alpha1=ALPHA_DEFAULT, delta=DELTA_DEFAULT):
        r"""Smoothed output of ``x`` (Algorithm 1).

        With probability at least :math:`1 - \alpha_1` the returned center's
        ball of radius ``radius`` holds at least :math:`1/2 - \Delta` of the
        output distribution, and the radius is at most :math:`\beta` times that
        of the smallest ball holding :math:`1/2 + \Delta`, when it does not
        abstain (:func:`cs_fast.bounds.center_check`). An ``n`` too small for
        ``delta`` at ``alpha1`` always abstains (``cs_fast.bounds.smallest_n``).
        """
        draw = self.sampler.draw(x)
        n = check_int(n, "n")
        alpha1 = check_open_interval(alpha1, "alpha1", 0.0, 1.0)
        delta = check_open_interval(delta, "delta", 0.0, 0.5)
        check_candidates(self.candidates, alpha1, self.allow_weak_candidates, "alpha1")
        evidence = self._evidence(draw, n)
        return _judge(evidence, self.bounds, _settings(self, draw, n, alpha1, delta), draw.where.home.export)

    def certify(self, x, eps1, n=N_DEFAULT, m=M_DEFAULT, alpha1=ALPHA_DEFAULT, alpha2=ALPHA_DEFAULT,
                delta=DELTA_DEFAULT):
        r"""Certified output radius of the smoothed model at ``x`` (Algorithm 2).

        Returns a :class:`Certificate`: with probability at least :math:`1 -
        \alpha_1 - \alpha_2` (over the three independent samples: ``n`` to pick
        the center, ``n`` to check its mass, ``m`` to certify), for every
        :math:`x'` with :math:`\|x' - x\|_2 \le \epsilon_1`,
        :math:`d(\hat f(x), \hat f(x')) \le \epsilon_{out} = \gamma (1 + \beta) R`.
        Abstains (with a reason) when the center check fails.

        Raises
        ------
        ValueError
            Before any model call, when ``n`` or ``m`` can never certify under
            the smoother's bounds: ``n`` below what ``delta`` needs at
            ``alpha1`` (Lemma 1), or ``m`` too small for the mass
            ``p`` that ``eps1 / sigma`` requires. The message names the
            smallest value that can (:func:`cs_fast.bounds.plan`).

        It runs in three steps, public so that the ``m`` certification samples
        can be spread over processes (:func:`cs_fast.distributed.certify_split`):
        :meth:`certify_center`, :meth:`certification_distances` on ranges of
        batches, and :meth:`finish_certificate` on all the distances.
        """
        stage, draw = self._certify_center(x, eps1, n, m, alpha1, alpha2, delta)
        if stage.certificate is not None:
            return stage.certificate
        dists = draw.distances(m, draw.streams[2], stage.center_sample, "certification")
        return _certificate(stage, dists, draw.where, self.gamma, self.beta)

    def compare_bounds(self, x, eps1, n=N_DEFAULT, m=M_DEFAULT, alpha1=ALPHA_DEFAULT, alpha2=ALPHA_DEFAULT,
                       delta=DELTA_DEFAULT):
        """Certificates under both rule sets from the same samples: ``{"exact": ..., "paper": ...}``.

        Each is the certificate that a smoother with that ``bounds`` and the
        same seed returns from :meth:`certify`, bit for bit; one set of model
        calls serves both. A rule set for which ``n`` or ``m`` can never
        certify gets an abstained certificate whose reason says which
        (instead of :meth:`certify`'s error); when neither can, the error of
        this smoother's own rule set is raised.
        """
        draw, eps1, n, m, alpha1, alpha2, delta, p = _check_certify(self, x, eps1, n, m, alpha1, alpha2, delta)
        ranks, refusals = {}, {}
        for rules in _bounds.BOUNDS:
            try:
                ranks[rules] = _bounds.require_certifiable(n, m, eps1, self.sigma, delta, alpha1, alpha2, rules)
            except ValueError as err:
                refusals[rules] = err
        if len(refusals) == len(_bounds.BOUNDS):
            raise refusals[self.bounds]
        evidence = self._evidence(draw, n)
        settings = _settings(self, draw, n, alpha1, delta)
        memo, stages = {}, {}
        for rules in _bounds.BOUNDS:
            sm = _judge(evidence, rules, settings, draw.where.home.export)
            rank = ranks.get(rules) or _bounds.certification_rank(m, p, alpha2, rules)
            stages[rules] = _stage(sm, evidence[0], dict(eps1=eps1, m=m, alpha2=alpha2, p=p), rank,
                                   lambda: memo.setdefault("error", draw.base_distance(evidence[0])))
        needed = any(st.certificate is None for st in stages.values())
        dists = draw.distances(m, draw.streams[2], evidence[0], "certification") if needed else None
        return {rules: _certificate(st, dists, draw.where, self.gamma, self.beta) for rules, st in stages.items()}

    def certify_center(self, x, eps1, n=N_DEFAULT, m=M_DEFAULT, alpha1=ALPHA_DEFAULT, alpha2=ALPHA_DEFAULT,
                       delta=DELTA_DEFAULT):
        """Step 1 of :meth:`certify`: the center, its check and the base output; everything but R.

        Returns a :class:`CertificationStage`; its ``certificate`` is already
        the final (abstained) certificate when the center check fails. Needs an
        explicit seed, so that the certification samples of step 2 come from
        the same noise. Refuses what :meth:`certify` refuses.
        """
        if self.seed is None:
            raise ValueError("seed: received None; certify_center needs an explicit seed so that "
                             "certification_distances draws from the same noise (certify draws fresh entropy)")
        return self._certify_center(x, eps1, n, m, alpha1, alpha2, delta)[0]

    def certification_distances(self, x, center_sample, m, first_batch=0, stop_batch=None):
        """Step 2 of :meth:`certify`: float64 distances to the center of certification batches ``[first, stop)``.

        Batch ``i`` holds samples ``i * batch_size`` to ``(i + 1) * batch_size``
        of the ``m``; the noise is that of the full run (earlier batches' noise
        is drawn and dropped, no model call). Concatenated over ranges that
        cover every batch, the distances are exactly those :meth:`certify`
        computes. ``center_sample`` is :attr:`CertificationStage.center_sample`.
        """
        if self.seed is None:
            raise ValueError("seed: received None; expected the seed given to certify_center")
        draw = self.sampler.draw(x)
        m = check_int(m, "m")
        return draw.distances(m, draw.streams[2], center_sample, "certification", first_batch, stop_batch)

    def finish_certificate(self, stage, distances):
        """Step 3 of :meth:`certify`: R, the ``stage.rank``-th smallest of all ``m`` distances, and the certificate.

        ``distances`` are selected where they live (numpy: on the host, a
        device array: on its device).
        """
        where = resolve("auto", distances, names=["distances"])
        return _certificate(stage, distances, where, self.gamma, self.beta)

    def _certify_center(self, x, eps1, n, m, alpha1, alpha2, delta):
        draw, eps1, n, m, alpha1, alpha2, delta, p = _check_certify(self, x, eps1, n, m, alpha1, alpha2, delta)
        rank = _bounds.require_certifiable(n, m, eps1, self.sigma, delta, alpha1, alpha2, self.bounds)
        evidence = self._evidence(draw, n)
        sm = _judge(evidence, self.bounds, _settings(self, draw, n, alpha1, delta), draw.where.home.export)
        stage = _stage(sm, evidence[0], dict(eps1=eps1, m=m, alpha2=alpha2, p=p), rank,
                       lambda: draw.base_distance(evidence[0]))
        return stage, draw

    def _evidence(self, draw, n):
        """(center where the samples live, its radius, fresh samples within it): what both rule sets judge."""
        Z = draw.sample(n, draw.streams[0], "center samples")
        with draw.scope():  # device work on the samples: the model's stream and pool
            where = draw.where
            if self.candidates is None:
                index, _ = min_median(Z, self.metric, backend=self.backend, tile=None, **self.metric_params)
                center = where.home.row(Z, index)
            else:
                C = draw.sample(self.candidates, draw.streams[3], "candidates")
                meds = [where.lower_median(draw.to_center(Z, C[i])) for i in range(C.shape[0])]
                center = where.home.row(C, int(np.argmin(meds)))
            # The radius from float64 distances of the same routine the checks use.
            radius = where.lower_median(draw.to_center(Z, center))
            fresh = draw.distances(n, draw.streams[1], center, "mass check")
            return center, radius, where.count_within(fresh, radius)


def _settings(smoother, draw, n, alpha1, delta):
    """The :class:`SmoothResult` fields that record a run's settings (all but ``bounds``)."""
    return dict(metric=smoother.metric.name, metric_params=copy.deepcopy(smoother.metric_params),
                sigma=smoother.sigma, n=n, alpha1=alpha1, delta=delta, candidates=smoother.candidates,
                gamma=smoother.gamma, beta=smoother.beta, **draw.seed_record())


def _judge(evidence, rules, settings, wrap):
    """The :class:`SmoothResult` of ``evidence`` (center, radius, count) under the rule set ``rules``.

    ``wrap`` turns the center into the caller's array kind; it is called only
    when the check passes.
    """
    center, radius, count = evidence
    check = _bounds.center_check(count, settings["n"], settings["delta"], settings["alpha1"], rules, radius)
    common = dict(radius=radius, delta1=check.delta1, delta2=check.delta2, **settings, bounds=rules,
                  count=count, threshold=check.threshold)
    if not check.passed:
        return SmoothResult(center=None, abstained=True, reason=check.reason, **common)
    return SmoothResult(center=wrap(center), abstained=False, reason=None, **common)


def _stage(sm, center, settings, rank, error):
    """The :class:`CertificationStage` of the smoothing result ``sm``.

    ``settings`` are the certification's (``eps1``, ``m``, ``alpha2``, ``p``),
    ``rank`` the :class:`cs_fast.bounds.CertificationRank` of ``R``;
    ``error()`` gives the smoothing error, asked for only when the center
    check passed.
    """
    common = {f.name: getattr(sm, f.name) for f in fields(SmoothResult)
              if f.name not in ("center", "abstained", "reason")}
    common.update(settings, q=rank.q)
    if sm.abstained:
        cert = Certificate(center=None, abstained=True, reason=sm.reason, eps_out=None, R=None,
                           smoothing_error=None, rank=None, level=None, **common)
        return CertificationStage(cert, None, None, common)
    smoothing_error = error()
    if rank.rank is None:
        cert = Certificate(center=sm.center, abstained=True, reason=rank.reason, eps_out=None, R=None,
                           smoothing_error=smoothing_error, rank=None, level=None, **common)
        return CertificationStage(cert, None, None, common)
    common.update(center=sm.center, smoothing_error=smoothing_error, rank=rank.rank, level=rank.level)
    return CertificationStage(None, center, rank.rank, common)


def _certificate(stage, distances, where, gamma, beta):
    r"""The certificate of ``stage``: :math:`R` = the ``stage.rank``-th smallest of all ``m`` ``distances``.

    The selection runs where the distances live (``where``: a
    :class:`cs_fast.bindings.backend.Host` or ``Device``); :math:`\epsilon_{out}
    = \gamma (1 + \beta) R`.
    """
    if stage.certificate is not None:
        return stage.certificate
    m = stage.fields["m"]
    if distances.shape[0] != m:
        raise ValueError(f"distances: received {distances.shape[0]} distances; expected all m = {m} of them")
    with where.scope():
        R = where.kth_smallest(distances, stage.rank)
    eps_out = bounds.certified_radius(R, gamma, beta)
    return Certificate(abstained=False, reason=None, eps_out=eps_out, R=R, **stage.fields)
