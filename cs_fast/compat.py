"""Drop-in replacements for code written against the authors' ``Smooth`` class.

Their code takes a ``dist_fn(batch1, batch2)`` that returns the distances of
matching rows, and finds the center with a Python loop over rows (``meb``).
Changing the import to this module gives the same calls on cs_fast's kernels::

    from cs_fast.compat import Smooth, jaccard_dist   # instead of the authors' modules
    smoothed = Smooth(model, jaccard_dist, sigma=0.25)
    eps_out, smoothing_error = smoothed.certify(x, eps_in=0.25)

Differences, on purpose: the center's radius is the *lower* median (the
``ceil(n/2)``-th smallest distance, whose ball provably holds half the
samples; ``np.median`` averages the two middle values for even ``n``), and
``R`` is an order statistic rather than ``np.quantile``'s interpolation (which
is anti-conservative). Everything else, including the ``(-1.0, ...)`` return
on abstention, follows their convention so calling code keeps working; the
full :class:`cs_fast.Certificate`, with the abstention reason, is kept in
``Smooth.last_certificate``.

Statistics: the shim certifies with cs_fast's default, the exact binomial
bounds (``bounds="exact"``; same failure probability ``alpha_1 + alpha_2``,
never a larger ``R`` than theirs on the same samples). ``Smooth(...,
bounds="paper")`` uses the paper's Hoeffding and DKW bounds, as their code
does; ``Smooth.bounds`` says which is in use.
"""

import math

from .bindings.distance import min_median, paired
from .metrics import get_metric
from .smoothing import CenterSmoothing


class DistFn:
    """A ``dist_fn(batch1, batch2)`` for one registered metric (distances of matching rows)."""

    def __init__(self, metric, **params):
        self.metric = get_metric(metric).name
        self.params = params

    def __call__(self, batch1, batch2):
        return paired(batch1, batch2, self.metric, **self.params)

    def __repr__(self):
        return f"DistFn({self.metric!r})"


jaccard_dist = DistFn("jaccard")
mask_jaccard_dist = DistFn("jaccard_mask")
tv_dist = DistFn("tv")
l2_dist = DistFn("l2")
l1_dist = DistFn("l1")
sqfeat_dist = DistFn("sqfeat")
angular_dist = DistFn("angular")


def _metric_of(dist_fn):
    if isinstance(dist_fn, DistFn):
        return dist_fn.metric, dist_fn.params
    if isinstance(dist_fn, str):
        return get_metric(dist_fn).name, {}
    raise TypeError(
        f"dist_fn: received {dist_fn!r}; expected one of cs_fast.compat's distance functions "
        "(jaccard_dist, tv_dist, l2_dist, ...) or a metric name: an arbitrary Python function "
        "cannot run in the kernels"
    )


def meb(samples, dist_fn):
    """``(center, radius)`` of the min-median sample, as the authors' ``Smooth.meb``, in one kernel call."""
    metric, params = _metric_of(dist_fn)
    index, radius = min_median(samples, metric, **params)
    return samples[index], radius


class Smooth:
    """The authors' ``Smooth`` interface on :class:`cs_fast.CenterSmoothing`.

    Parameters mirror theirs: ``n_pred`` (n), ``n_cert`` (m), ``n_cntr``
    (candidates, used when ``output_is_hd``), ``alpha_1``, ``alpha_2``,
    ``delta`` and ``radius_coeff`` (checked against the metric: 3 for a
    metric, 10 for a squared distance). ``bounds`` picks the statistics
    (module docstring); the attribute ``bounds`` records it.
    """

    def __init__(self, base_function, dist_fn, sigma, n_pred=10**4, n_cert=10**6, n_cntr=30,
                 alpha_1=0.005, alpha_2=0.005, delta=0.05, radius_coeff=None, output_is_hd=False, seed=None,
                 bounds="exact"):
        metric, params = _metric_of(dist_fn)
        self._smoother = CenterSmoothing(base_function, metric, sigma, metric_params=params, seed=seed,
                                         candidates=n_cntr if output_is_hd else None, bounds=bounds)
        self.bounds = self._smoother.bounds
        expected = self._smoother.gamma * (1 + self._smoother.beta)
        if radius_coeff is not None and not math.isclose(radius_coeff, expected):
            raise ValueError(
                f"radius_coeff: received {radius_coeff}; the metric {metric!r} certifies with "
                f"gamma (1 + beta) = {expected:g}"
            )
        self.n_pred, self.n_cert = n_pred, n_cert
        self.alpha_1, self.alpha_2, self.delta = alpha_1, alpha_2, delta
        self.last_certificate = None

    def certify(self, input, eps_in, batch_size=1000):
        """``(eps_out, smoothing_error)``; ``eps_out = -1.0`` when it abstains (their convention)."""
        self._smoother.batch_size = batch_size
        cert = self._smoother.certify(input, eps_in, n=self.n_pred, m=self.n_cert, alpha1=self.alpha_1,
                                      alpha2=self.alpha_2, delta=self.delta)
        self.last_certificate = cert
        error = -1.0 if cert.smoothing_error is None else cert.smoothing_error
        return (-1.0 if cert.abstained else cert.eps_out), error

    def compute_center(self, input, batch_size=1000):
        """``(center, is_good)`` as theirs."""
        self._smoother.batch_size = batch_size
        res = self._smoother.smooth(input, n=self.n_pred, alpha1=self.alpha_1, delta=self.delta)
        return res.center, not res.abstained
