r"""The statistics of center smoothing: pure functions on the CPU.

Notation as in the paper: ``n`` samples pick the center, ``m`` samples certify
it, :math:`\Delta` is the extra probability mass the center's ball must hold
beyond one half, :math:`\alpha_1, \alpha_2` are failure probabilities.

Two sets of rules turn samples into a certificate, chosen before any sampling
(``bounds=``):

- ``"paper"``: the paper's Hoeffding margin for the center (:func:`smoothing_margin`)
  and the one-sided Dvoretzky–Kiefer–Wolfowitz level for ``R``
  (:func:`quantile_level`, :func:`order_rank`);
- ``"exact"`` (the default): the exact binomial tails that those inequalities
  bound (:func:`exact_rank`, :func:`center_check`, :func:`certification_rank`).
  Same failure probability :math:`\alpha_1 + \alpha_2`, never a larger rank
  than the paper's, so never a larger ``R`` on the same samples.

Write :math:`S(m, \pi, k) = P(\mathrm{Binomial}(m, \pi) \ge k)` throughout.
"""

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ._checks import check_int, check_nonnegative, check_open_interval, check_positive, check_real

#: The two rule sets (module docstring); the first is the default.
BOUNDS = ("exact", "paper")

# Defaults of the paper and the authors' code (every entry point uses these).
N_DEFAULT = 10_000
M_DEFAULT = 1_000_000
ALPHA_DEFAULT = 0.005
DELTA_DEFAULT = 0.05

#: Added to every probability whose binomial tail decides a rank: an upper bound on the
#: rounding of :func:`required_mass` (ndtr/ndtri are accurate to a few ulps), and it makes the
#: certified mass strictly larger than the required one (see :func:`exact_rank`).
PROBABILITY_PAD = 1e-12
#: A tail counts as at most ``alpha`` only when it is below ``alpha * (1 - TAIL_HAIR)``: scipy's
#: incomplete beta function is accurate to about 1e-12 relative up to m = 1e8 (tested against
#: mpmath), so a rank accepted here is accepted by the exact tail too.
TAIL_HAIR = 1e-6


def smoothing_margin(n, alpha1):
    r"""Hoeffding margin :math:`\Delta_1 = \sqrt{\ln(2/\alpha_1) / (2n)}`.

    Guarantee: for ``n`` i.i.d. samples, the empirical fraction of samples in
    any fixed ball differs from its probability by more than
    :math:`\Delta_1` with probability at most :math:`\alpha_1/2` per side.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> round(bounds.smoothing_margin(10_000, 0.005), 6)
    0.017308
    """
    n = check_int(n, "n")
    alpha1 = check_open_interval(alpha1, "alpha1", 0.0, 1.0)
    return math.sqrt(math.log(2.0 / alpha1) / (2.0 * n))


def required_mass(delta, eps1, sigma):
    r"""Mass :math:`p = \Phi(\Phi^{-1}(1/2 + \Delta) + \epsilon_1/\sigma)` the certified ball must hold.

    Guarantee (Gaussian smoothing, Salman et al. / paper eq. (2)): if a set
    holds at least :math:`1/2 + \Delta` of the mass of :math:`f(x' + N(0,
    \sigma^2 I))` for some :math:`\|x' - x\|_2 \le \epsilon_1`, it holds at
    least ``p`` of the mass of :math:`f(x + N(0, \sigma^2 I))`; contrapositively,
    a ball with ``p`` mass at ``x`` keeps more than one half at every such ``x'``.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> round(bounds.required_mass(0.05, 0.0, 1.0), 4)  # eps1 = 0: just 1/2 + delta
    0.55
    >>> round(bounds.required_mass(0.05, 0.5, 0.25), 4)  # h = eps1 / sigma = 2
    0.9832
    """
    delta = check_open_interval(delta, "delta", 0.0, 0.5)
    eps1 = check_nonnegative(eps1, "eps1")
    sigma = check_positive(sigma, "sigma")
    # scipy.stats.norm's cdf/ppf are these two functions; imported here, not at import
    # time, because scipy.stats alone takes a second to import.
    from scipy.special import ndtr, ndtri

    return float(ndtr(ndtri(0.5 + delta) + eps1 / sigma))


def quantile_level(p, m, alpha2):
    r"""DKW-corrected level :math:`q = p + \sqrt{\ln(1/\alpha_2) / (2m)}`.

    Guarantee (Dvoretzky–Kiefer–Wolfowitz, one-sided): with probability at
    least :math:`1 - \alpha_2`, the empirical ``q``-quantile of ``m`` i.i.d.
    distances bounds a ball holding at least ``p`` of the true mass. May
    exceed 1, in which case no finite certificate exists for this ``m``.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> p = bounds.required_mass(0.05, 2.0, 1.0)
    >>> round(bounds.quantile_level(p, 10**6, 0.005), 6)
    0.984862
    """
    p = _check_probability(p, "p")
    m = check_int(m, "m")
    alpha2 = check_open_interval(alpha2, "alpha2", 0.0, 1.0)
    return p + math.sqrt(math.log(1.0 / alpha2) / (2.0 * m))


def order_statistic(distances, q):
    r"""The ``order_rank(q, m)``-th smallest of ``m`` distances, never interpolated.

    Interpolating between order statistics would return a radius below the
    one the DKW bound certifies (anti-conservative). The rank is
    :math:`\lceil q m \rceil` of the floating-point ``q``, plus one where
    ``q m`` is an integer or within a few ulps below one (see
    :func:`order_rank`), so the rounding of ``q`` can only move it up.

    Raises
    ------
    ValueError
        If ``q`` is not in (0, 1] (for ``q > 1`` no sample quantile is large
        enough: abstain instead), or ``distances`` is empty or not finite.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> bounds.order_statistic([5.0, 4.0, 3.0, 2.0, 1.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.5)  # rank 6, not 5.5
    6.0
    """
    d = _checked_distances(distances)
    q = check_real(q, "q")
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q: received {q}; expected a level in (0, 1] (q > 1 means: abstain)")
    return kth_smallest(d, order_rank(q, d.size))


def _checked_distances(distances):
    """``distances`` as a flat float64 array, or the error for an empty or non-finite one."""
    d = np.asarray(distances, dtype=np.float64).reshape(-1)
    if d.size == 0:
        raise ValueError("distances: received an empty array; expected at least one distance")
    if not np.isfinite(d).all():
        raise ValueError(f"distances: {int((~np.isfinite(d)).sum())} entries are NaN or inf; expected finite values")
    return d


def order_rank(q, m):
    r"""1-based rank of the certified order statistic: :math:`\lceil q m (1 + 8\varepsilon) \rceil` in [1, m].

    Here :math:`\varepsilon = 2^{-52}` and the product is the float64 one.
    That is :math:`\lceil q m \rceil` of the floating-point ``q``, plus one
    where ``q m`` is an integer or lies within about 8 ulps below one
    (``order_rank(0.5, 10) == 6``, ``order_rank(0.29, 100) == 30`` since
    ``0.29 * 100 == 28.999999999999996``, ``order_rank(0.51, 10) == 6``).
    ``q`` carries rounding error from :func:`required_mass` and
    :func:`quantile_level`, so a product that lands on an integer may stand
    for a true level just above it; taking one more rank there is
    conservative (a larger R), never the reverse. Clipped to ``[1, m]``.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> bounds.order_rank(0.5, 10), bounds.order_rank(0.51, 10), bounds.order_rank(0.49, 10)
    (6, 6, 5)
    """
    k = math.ceil(q * m * (1.0 + 8.0 * np.finfo(np.float64).eps))
    return max(1, min(m, k))


def certified_radius(R, gamma, beta):
    r"""Output radius :math:`\epsilon_{out} = \gamma (1 + \beta) R`.

    For the min-median center :math:`\beta = 2\gamma`, so a metric
    (:math:`\gamma = 1`) gets :math:`3R` and a squared distance
    (:math:`\gamma = 2`) gets :math:`10R`. Guarantee (paper Thm. 3 with the
    relaxed triangle inequality): with probability at least
    :math:`1 - \alpha_1 - \alpha_2`, :math:`d(\hat f(x), \hat f(x')) \le
    \epsilon_{out}` for every :math:`\|x - x'\|_2 \le \epsilon_1`.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> round(bounds.certified_radius(0.1, 1.0, 2.0), 12)  # a metric: 3 R
    0.3
    >>> bounds.certified_radius(0.1, 2.0, 4.0)  # a squared distance: 10 R
    1.0
    """
    R = check_nonnegative(R, "R")
    gamma = check_positive(gamma, "gamma")
    beta = check_nonnegative(beta, "beta")
    return gamma * (1.0 + beta) * R


def kth_smallest(distances, k):
    """The ``k``-th smallest of ``distances`` (1-based, never interpolated).

    Raises
    ------
    ValueError
        If ``distances`` is empty or not finite, or ``k`` is not in ``[1, len(distances)]``.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> bounds.kth_smallest([3.0, 1.0, 2.0, 5.0], 2)
    2.0
    """
    d = _checked_distances(distances)
    k = check_int(k, "k")
    if k > d.size:
        raise ValueError(f"k: received {k}; expected a rank in [1, {d.size}] (the number of distances)")
    return float(np.partition(d, k - 1)[k - 1])


# ----------------------------------------------------------------------------- exact binomial bounds


def check_bounds(bounds):
    """``bounds`` if it names a rule set of :data:`BOUNDS`, else the error naming the argument.

    Raises
    ------
    TypeError, ValueError
        For anything but ``"exact"`` or ``"paper"``.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> bounds.check_bounds("paper")
    'paper'
    >>> bounds.check_bounds("hoeffding")
    Traceback (most recent call last):
    ...
    ValueError: bounds: received 'hoeffding'; expected one of ('exact', 'paper')
    """
    if not isinstance(bounds, str):
        raise TypeError(f"bounds: received {bounds!r} ({type(bounds).__name__}); expected one of {BOUNDS}")
    if bounds not in BOUNDS:
        raise ValueError(f"bounds: received {bounds!r}; expected one of {BOUNDS}")
    return bounds


def _check_probability(p, name):
    p = check_real(p, name)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: received {p}; expected a probability in [0, 1]")
    return p


def _tail(m, p, k):
    """Upper estimate of S(m, p, k): the larger of two independent scipy evaluations (arrays allowed)."""
    from scipy.special import bdtrc, betainc

    k = np.asarray(k, dtype=np.int64)
    m = np.asarray(m, dtype=np.int64)
    inside = (k >= 1) & (k <= m)
    kk = np.where(inside, k, 1)
    # betainc(k, m - k + 1, p) is the tail itself; bdtrc(k - 1, m, p) = P(X > k - 1) is the same
    # number by another route. Neither may be trusted alone at a rank that must never be too small.
    both = np.maximum(betainc(kk.astype(np.float64), (m - kk + 1).astype(np.float64), p), bdtrc(kk - 1, m, p))
    out = np.where(inside, both, np.where(k < 1, 1.0, 0.0))
    return float(out) if out.ndim == 0 else out


def binomial_tail(m, p, k):
    r""":math:`S(m, p, k) = P(\mathrm{Binomial}(m, p) \ge k)`, estimated from above.

    The larger of scipy's ``betainc(k, m - k + 1, p)`` and ``bdtrc(k - 1, m, p)``
    (both equal :math:`S` in exact arithmetic), so a rounding error of either can
    only raise it. Accurate to about 1e-7 relative for ``m`` up to 1e8 (tested
    against a 40-digit mpmath sum). 1 for ``k <= 0``, 0 for ``k > m``.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> round(bounds.binomial_tail(10, 0.5, 8), 6)  # (45 + 10 + 1) / 1024
    0.054688
    """
    m = check_int(m, "m")
    p = _check_probability(p, "p")
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k: received {k!r} ({type(k).__name__}); expected an integer")
    return _tail(m, p, int(k))


def paper_rank(m, p, alpha):
    r"""The paper's rank for mass ``p``: :func:`order_rank` of the DKW level ``q``, or None when ``q > 1``.

    ``q = quantile_level(p, m, alpha)``; this is the rank ``bounds="paper"``
    certifies with.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> p = bounds.required_mass(0.05, 2.0, 1.0)
    >>> bounds.paper_rank(10_000, p, 0.005), bounds.paper_rank(9_000, p, 0.005)
    (9996, None)
    """
    q = quantile_level(p, m, alpha)
    return None if q > 1.0 else order_rank(q, m)


def bisect_rank(m, p, alpha):
    r"""The search behind :func:`exact_rank`: the smallest ``k`` with :math:`S(m, p + pad, k) \le \alpha (1 - hair)`.

    Bisection on ``k`` (``S`` is non-increasing in ``k``) with the padded
    probability and the relative hair of the module's constants; None where
    even ``k = m`` is not enough. :func:`exact_rank` adds what makes the
    rank safe to certify with (the check of the returned tail, the cap by the
    paper's rank); use that one.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> p = bounds.required_mass(0.05, 2.0, 1.0)
    >>> bounds.bisect_rank(10_000, p, 0.005), bounds.bisect_rank(313, p, 0.005)
    (9865, None)
    """
    pi = min(1.0, p + PROBABILITY_PAD)
    accept = alpha * (1.0 - TAIL_HAIR)
    if _tail(m, pi, m) > accept:  # S(m, pi, m) = pi^m: even the largest distance is not enough
        return None
    lo, hi = 1, m  # S is non-increasing in k and S(m, pi, hi) <= accept
    while lo < hi:
        mid = (lo + hi) // 2
        if _tail(m, pi, mid) <= accept:
            hi = mid
        else:
            lo = mid + 1
    return lo if _tail(m, pi, lo) <= accept else None


def exact_rank(m, p, alpha):
    r"""The smallest rank ``k`` in ``[1, m]`` with :math:`S(m, p, k) \le \alpha`, or None when :math:`p^m > \alpha`.

    Guarantee (the exact form of the paper's Lemma 2). Let ``F`` be the
    distribution function of a distance and :math:`Q = \inf\{t : F(t) \ge
    \pi\}`. The ``k``-th smallest of ``m`` i.i.d. distances, ``R``, has
    :math:`F(R) < \pi` only if ``R < Q``, that is only if at least ``k`` of the
    ``m`` distances fall below ``Q``. Each does so with probability
    :math:`F(Q^-) \le \pi`, so the count is at most a Binomial(m, π) count and

    .. math:: P(F(R) < \pi) \le S(m, \pi, k) \le \alpha.

    Atoms and ties in the distance law only lower :math:`F(Q^-)`, so the bound
    holds for every law. With probability at least :math:`1 - \alpha` the
    closed ball of radius ``R`` holds mass at least :math:`\pi`.

    Numerics never make ``k`` too small: the tail is evaluated at
    :math:`\pi = p + 10^{-12}` (:data:`PROBABILITY_PAD`: it absorbs the rounding
    of ``p`` and makes the certified mass *strictly* above ``p``, which the
    certificate's two-balls argument needs), as the larger of two scipy
    evaluations (:func:`binomial_tail`), accepted only below
    :math:`\alpha (1 - 10^{-6})` (:data:`TAIL_HAIR`), and the returned rank's tail
    is checked again. Finally ``k`` is capped by :func:`paper_rank`: by
    Hoeffding's inequality :math:`S(m, p, k) \le e^{-2m(k/m - p)^2} \le \alpha`
    at the paper's rank, so that rank is valid for this rule too, and the
    exact rank is never larger than the paper's on any input.

    Parameters
    ----------
    m : int
        Number of distances.
    p : float
        The mass the ball must hold, in [0, 1].
    alpha : float
        Failure probability, in (0, 1).

    Returns
    -------
    int or None

    Examples
    --------
    >>> from cs_fast import bounds
    >>> p = bounds.required_mass(0.05, 2.0, 1.0)  # h = eps1 / sigma = 2
    >>> bounds.exact_rank(10_000, p, 0.005), bounds.paper_rank(10_000, p, 0.005)
    (9865, 9996)
    >>> bounds.exact_rank(313, p, 0.005) is None  # p^313 > 0.005: no rank certifies
    True
    """
    m = check_int(m, "m")
    p = _check_probability(p, "p")
    alpha = check_open_interval(alpha, "alpha", 0.0, 1.0)
    k = bisect_rank(m, p, alpha)
    paper = paper_rank(m, p, alpha)
    if paper is not None and (k is None or paper < k):
        k = paper
    return k


def clopper_pearson_lower(count, n, alpha):
    r"""One-sided Clopper–Pearson lower bound of a binomial proportion at level ``alpha``.

    The :math:`\pi` with :math:`S(n, \pi, \mathrm{count}) = \alpha` (0 when
    ``count`` is 0): with probability at least :math:`1 - \alpha` the true
    proportion is at least this value.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> round(bounds.clopper_pearson_lower(480, 1000, 0.0025), 4)  # 48 % observed: at least 43.5 %
    0.4354
    """
    from scipy.special import betaincinv

    n = check_int(n, "n")
    count = check_int(count, "count", minimum=0)
    if count > n:
        raise ValueError(f"count: received {count}; expected at most n = {n}")
    alpha = check_open_interval(alpha, "alpha", 0.0, 1.0)
    return 0.0 if count == 0 else float(betaincinv(count, n - count + 1, alpha))


def lemma1_margin(n, alpha1):
    r"""The exact Lemma 1 margin :math:`\Delta_1`: the smallest :math:`\Delta` the center sample of ``n`` admits.

    Lemma 1 (exact form). Let ``B`` be a ball of mass at least
    :math:`1/2 + \Delta` (the smallest such ball, radius :math:`\tilde r`). The
    ``n`` center samples put a Binomial(n, ≥ 1/2 + Δ) count in ``B``; when it is
    at least :math:`\lceil n/2 \rceil`, every sample in ``B`` has at least half
    of the samples (itself among them) within :math:`2\tilde r`, so the
    min-median radius is at most :math:`\beta \tilde r`. That fails with
    probability :math:`P(\mathrm{Binomial}(n, 1/2 + \Delta) < \lceil n/2
    \rceil)`, which must be at most :math:`\alpha_1 / 2`. The margin returned
    is the :math:`\Delta` at which that probability equals :math:`\alpha_1/2`
    (from scipy's inverse incomplete beta function; informative only — the
    decision is the integer test in :func:`center_check`).

    Examples
    --------
    >>> from cs_fast import bounds
    >>> round(bounds.lemma1_margin(1000, 0.005), 4), round(bounds.smoothing_margin(1000, 0.005), 4)  # vs Hoeffding
    (0.0438, 0.0547)
    """
    from scipy.special import betainccinv

    n = check_int(n, "n")
    alpha1 = check_open_interval(alpha1, "alpha1", 0.0, 1.0)
    half = -(-n // 2)
    # P(Binomial(n, pi) <= half - 1) = 1 - I_pi(half, n - half + 1) = alpha1 / 2
    return float(betainccinv(half, n - half + 1, alpha1 / 2.0)) - 0.5


def paper_threshold(n, delta, alpha1):
    r"""The smallest count of fresh samples the paper's center check passes, or None.

    The paper passes when :math:`\Delta_1 \le \Delta` and :math:`\Delta_2 = 1/2
    - (K/n - \Delta_1) \le \Delta` (Hoeffding, :func:`smoothing_margin`),
    evaluated in floating point exactly as :func:`center_check` does. None when
    no count passes (then :math:`\Delta_1 > \Delta`).

    Examples
    --------
    >>> from cs_fast import bounds
    >>> bounds.paper_threshold(2000, 0.05, 0.005), bounds.paper_threshold(1000, 0.05, 0.005)
    (978, None)
    """
    n = check_int(n, "n")
    delta = check_open_interval(delta, "delta", 0.0, 0.5)
    delta1 = smoothing_margin(n, alpha1)
    if delta1 > delta:
        return None

    def passes(count):
        return not 0.5 - (count / n - delta1) > delta

    k = min(n, max(0, math.ceil(n * (0.5 - delta + delta1))))
    while k > 0 and passes(k - 1):
        k -= 1
    while k <= n and not passes(k):
        k += 1
    return k if k <= n else None


def _exact_threshold(n, delta, alpha1):
    """(threshold, admissible) of the exact center check, before the paper's cap."""
    threshold = bisect_rank(n, 0.5 - delta, alpha1 / 2.0)
    return threshold, threshold is not None and threshold <= n // 2 + 1


@dataclass(frozen=True)
class CenterCheck:
    """Outcome of :func:`center_check`.

    Attributes
    ----------
    passed : bool
    count, n : int
        Fresh samples within the radius, of ``n``.
    threshold : int or None
        The smallest count that passes (None: none can, ``n`` is too small).
    delta1, delta2 : float
        The margins the rule reports (see :func:`center_check`).
    reason : str or None
        Why it failed.
    """

    passed: bool
    count: int
    n: int
    threshold: Optional[int]
    delta1: float
    delta2: float
    reason: Optional[str]


def center_check(count, n, delta, alpha1, bounds="exact", radius=None):
    r"""Decide whether the center's ball holds enough mass: ``count`` of ``n`` fresh samples lie within its radius.

    Both rules spend :math:`\alpha_1/2` on Lemma 1 (the center sample
    admits :math:`\Delta`) and :math:`\alpha_1/2` on the check of the ball's
    mass :math:`\ge 1/2 - \Delta`.

    ``"paper"``: :math:`\Delta_1 = \sqrt{\ln(2/\alpha_1)/(2n)}` (Hoeffding),
    :math:`\Delta_2 = 1/2 - (K/n - \Delta_1)`; pass iff :math:`\max(\Delta_1,
    \Delta_2) \le \Delta`.

    ``"exact"``: with :math:`k^* = ` :func:`exact_rank` :math:`(n, 1/2 - \Delta,
    \alpha_1/2)`:

    - Lemma 1 holds iff :math:`P(\mathrm{Binomial}(n, 1/2 + \Delta) < \lceil
      n/2 \rceil) \le \alpha_1/2`; by the symmetry :math:`X \mapsto n - X` that
      is :math:`S(n, 1/2 - \Delta, \lfloor n/2 \rfloor + 1) \le \alpha_1/2`, i.e.
      :math:`k^* \le \lfloor n/2 \rfloor + 1` (see :func:`lemma1_margin`);
    - the ball passes iff :math:`K \ge k^*`, the one-sided Clopper–Pearson test:
      if its mass were below :math:`1/2 - \Delta`, ``K`` would be at most a
      Binomial(n, 1/2 − Δ) count, which reaches :math:`k^*` with probability at
      most :math:`\alpha_1/2`. The radius comes from the first sample, so it
      is fixed given the fresh one.

    Reported: :math:`\Delta_1` = :func:`lemma1_margin`, :math:`\Delta_2 = 1/2 -`
    :func:`clopper_pearson_lower` :math:`(K, n, \alpha_1/2)`. The threshold is
    capped by :func:`paper_threshold` (Hoeffding bounds the same tails), so the
    exact check passes whenever the paper's does.

    Parameters
    ----------
    count, n : int
        Fresh samples within the radius (``<=``), of ``n``.
    delta, alpha1 : float
    bounds : {'exact', 'paper'}
    radius : float, optional
        Only for the abstention message.

    Returns
    -------
    CenterCheck

    Examples
    --------
    >>> from cs_fast import bounds
    >>> bounds.center_check(520, 1000, 0.05, 0.005).passed
    True
    >>> bounds.center_check(520, 1000, 0.05, 0.005).threshold
    495
    >>> bounds.center_check(470, 1000, 0.05, 0.005, bounds="paper").reason
    'center check failed: delta1 = 0.05473 > delta = 0.05 (increase n or alpha1)'
    """
    bounds = check_bounds(bounds)
    n = check_int(n, "n")
    count = check_int(count, "count", minimum=0)
    if count > n:
        raise ValueError(f"count: received {count}; expected at most n = {n}")
    delta = check_open_interval(delta, "delta", 0.0, 0.5)
    alpha1 = check_open_interval(alpha1, "alpha1", 0.0, 1.0)
    where = "the radius" if radius is None else f"radius {radius:.4g}"
    threshold = paper_threshold(n, delta, alpha1)
    if bounds == "paper":
        delta1 = smoothing_margin(n, alpha1)
        p_hat = count / n
        delta2 = 0.5 - (p_hat - delta1)
        reason = None
        if delta1 > delta:
            reason = f"center check failed: delta1 = {delta1:.4g} > delta = {delta:.4g} (increase n or alpha1)"
        elif delta2 > delta:
            reason = (f"center check failed: delta2 = {delta2:.4g} > delta = {delta:.4g} (only {p_hat:.4f} of "
                      f"fresh samples within {where})")
        return CenterCheck(reason is None, count, n, threshold, delta1, delta2, reason)
    exact, admissible = _exact_threshold(n, delta, alpha1)
    if threshold is not None:  # the paper's check is valid for the exact rule (Hoeffding): cap by it
        admissible = True
        threshold = threshold if exact is None else min(exact, threshold)
    else:
        threshold = exact if admissible else None
    delta1 = lemma1_margin(n, alpha1)
    delta2 = 0.5 - clopper_pearson_lower(count, n, alpha1 / 2.0)
    reason = None
    if not admissible:
        reason = (f"n too small for delta at alpha1: P(Binomial(n = {n}, 1/2 + delta) < {-(-n // 2)}) > "
                  f"alpha1/2 = {alpha1 / 2:.3g} (exact margin delta1 = {delta1:.4g} > delta = {delta:.4g}; "
                  f"every n >= {smallest_n(delta, alpha1, 'exact')} passes; or increase alpha1)")
    elif count < threshold:
        reason = (f"center check failed: {count} of {n} fresh samples within {where}, below the "
                  f"threshold {threshold} for mass 1/2 - delta = {0.5 - delta:.4g} at alpha1/2 = {alpha1 / 2:.3g} "
                  f"(delta2 = {delta2:.4g}, delta = {delta:.4g})")
    return CenterCheck(reason is None, count, n, threshold if admissible else None, delta1, delta2, reason)


@dataclass(frozen=True)
class CertificationRank:
    """Outcome of :func:`certification_rank`.

    Attributes
    ----------
    rank : int or None
        ``k``: ``R`` is the ``k``-th smallest of the ``m`` distances (None: abstain).
    level : float or None
        ``k / m``, the empirical mass of the certified ball.
    q : float or None
        The paper's DKW level (``"paper"`` only).
    reason : str or None
        Why no rank certifies.
    """

    rank: Optional[int]
    level: Optional[float]
    q: Optional[float]
    reason: Optional[str]


def certification_rank(m, p, alpha2, bounds="exact"):
    r"""The rank of ``R`` among ``m`` certification distances for mass ``p``, under ``bounds``.

    ``"paper"``: :math:`q = p + \sqrt{\ln(1/\alpha_2)/(2m)}` (:func:`quantile_level`),
    ``k = `` :func:`order_rank` ``(q, m)``; none when ``q > 1``.
    ``"exact"``: ``k = `` :func:`exact_rank` ``(m, p, alpha2)``; none when
    :math:`p^m > \alpha_2`. Either way, with probability at least :math:`1 -
    \alpha_2` the ball of radius ``R`` (the ``k``-th smallest distance) holds more
    than mass ``p``.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> p = bounds.required_mass(0.05, 2.0, 1.0)
    >>> bounds.certification_rank(2000, p, 0.005).rank
    1981
    >>> bounds.certification_rank(2000, p, 0.005, bounds="paper").reason[:6]
    'q = 1.'
    """
    bounds = check_bounds(bounds)
    m = check_int(m, "m")
    p = _check_probability(p, "p")
    alpha2 = check_open_interval(alpha2, "alpha2", 0.0, 1.0)
    if bounds == "paper":
        q = quantile_level(p, m, alpha2)
        if q > 1.0:
            return CertificationRank(None, None, q, f"q = {q:.6g} > 1: m = {m} samples cannot certify mass "
                                                    f"p = {p:.6g} (increase m, or sigma relative to eps1)")
        k = order_rank(q, m)
        return CertificationRank(k, k / m, q, None)
    k = exact_rank(m, p, alpha2)
    if k is None:
        need = smallest_m(p, alpha2, "exact")
        hint = "no m can: p rounds to 1" if need is None else f"need m >= {need}"
        return CertificationRank(None, None, None, (
            f"p^m > alpha2: m too small: m = {m} samples cannot certify mass p = {p:.6g} (p^m = "
            f"{p ** m:.3g} > alpha2 = {alpha2:.3g}; {hint}, or sigma larger relative to eps1)"))
    return CertificationRank(k, k / m, None, None)


# ----------------------------------------------------------------------------- planning


def smallest_m(p, alpha2, bounds="exact"):
    r"""The smallest ``m`` whose :func:`certification_rank` exists for mass ``p``, or None when none does.

    Exact: the smallest ``m`` with :math:`(p + 10^{-12})^m < \alpha_2 (1 - 10^{-6})`
    (:math:`\approx \ln\alpha_2 / \ln p`); paper: the smallest with ``q <= 1``
    (:math:`\approx \ln(1/\alpha_2) / (2 (1 - p)^2)`). Both sets are upward
    closed in ``m``.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> p = bounds.required_mass(0.05, 2.0, 1.0)  # h = 2
    >>> bounds.smallest_m(p, 0.005), bounds.smallest_m(p, 0.005, bounds="paper")
    (314, 9425)
    """
    bounds = check_bounds(bounds)
    p = _check_probability(p, "p")
    alpha2 = check_open_interval(alpha2, "alpha2", 0.0, 1.0)
    if bounds == "paper":
        if p >= 1.0:
            return None

        def ok(m):
            return quantile_level(p, m, alpha2) <= 1.0

        guess = math.log(1.0 / alpha2) / (2.0 * (1.0 - p) ** 2)
    else:
        pi = min(1.0, p + PROBABILITY_PAD)
        if pi >= 1.0:
            return None

        def ok(m):
            return exact_rank(m, p, alpha2) is not None

        guess = math.log(alpha2 * (1.0 - TAIL_HAIR)) / math.log(pi) if pi > 0 else 1.0
    if guess > 1e15:
        return None
    m = max(1, math.ceil(guess))
    while m > 1 and ok(m - 1):
        m -= 1
    while not ok(m):
        m += 1
    return m


def _admissible(n, delta, alpha1, bounds):
    """:func:`admissible` without the argument checks."""
    if paper_threshold(n, delta, alpha1) is not None:  # admissible for both rules (Hoeffding)
        return True
    if bounds == "paper":
        return False
    pi = min(1.0, 0.5 - delta + PROBABILITY_PAD)
    return bool(_tail(n, pi, n // 2 + 1) <= (alpha1 / 2.0) * (1.0 - TAIL_HAIR))


def admissible(n, delta, alpha1, bounds="exact"):
    r"""Whether the center check at ``n`` can pass at all: Lemma 1 admits ``delta`` at ``alpha1``.

    Paper: :math:`\sqrt{\ln(2/\alpha_1)/(2n)} \le \Delta`. Exact:
    :math:`P(\mathrm{Binomial}(n, 1/2 + \Delta) < \lceil n/2 \rceil) \le
    \alpha_1/2` (:func:`center_check`, :func:`lemma1_margin`), or the paper's
    condition (which implies it).

    Examples
    --------
    >>> from cs_fast import bounds
    >>> bounds.admissible(1000, 0.05, 0.005), bounds.admissible(1000, 0.05, 0.005, bounds="paper")
    (True, False)
    """
    bounds = check_bounds(bounds)
    n = check_int(n, "n")
    delta = check_open_interval(delta, "delta", 0.0, 0.5)
    alpha1 = check_open_interval(alpha1, "alpha1", 0.0, 1.0)
    return _admissible(n, delta, alpha1, bounds)


def smallest_n(delta, alpha1, bounds="exact"):
    r"""The smallest ``n`` from which on every ``n`` admits ``delta`` (Lemma 1), so the center check can pass.

    Paper: :math:`\sqrt{\ln(2/\alpha_1)/(2n)} \le \Delta`. Exact: :math:`S(n,
    1/2 - \Delta, \lfloor n/2 \rfloor + 1) \le \alpha_1/2` (see
    :func:`center_check`), found by bisection within each parity of ``n`` (the
    tail decreases along even and along odd ``n``; even ``n`` admit earlier,
    since the lower median of an even count needs one sample fewer than half
    plus one), below the paper's value, which is admissible for both rules.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> bounds.smallest_n(0.05, 0.005), bounds.smallest_n(0.05, 0.005, bounds="paper")
    (784, 1199)
    """
    bounds = check_bounds(bounds)
    delta = check_open_interval(delta, "delta", 0.0, 0.5)
    alpha1 = check_open_interval(alpha1, "alpha1", 0.0, 1.0)
    top = max(1, math.ceil(math.log(2.0 / alpha1) / (2.0 * delta * delta)))
    while paper_threshold(top, delta, alpha1) is None:
        top += 1
    while top > 1 and paper_threshold(top - 1, delta, alpha1) is not None:
        top -= 1
    if bounds == "paper":
        return top
    firsts = []
    for parity in (0, 1):
        lo = 2 if parity == 0 else 1  # even: 2, 4, ...; odd: 1, 3, ...
        hi = top + ((top - parity) % 2)  # the first n >= top of this parity (admissible)
        # bisection over n = lo, lo + 2, ..., hi
        a, b = 0, (hi - lo) // 2
        while a < b:
            mid = (a + b) // 2
            if _admissible(lo + 2 * mid, delta, alpha1, "exact"):
                b = mid
            else:
                a = mid + 1
        firsts.append(lo + 2 * a)
    n0 = max(firsts)
    while n0 > 1 and n0 - 1 >= firsts[(n0 - 1) % 2]:
        n0 -= 1
    return n0


def require_certifiable(n, m, eps1, sigma, delta=DELTA_DEFAULT, alpha1=ALPHA_DEFAULT, alpha2=ALPHA_DEFAULT,
                        bounds="exact"):
    r"""The :class:`CertificationRank` of a certification, or the error for an ``n`` or ``m`` that never certifies.

    What :meth:`cs_fast.CenterSmoothing.certify` checks before any model
    call: ``n`` must be :func:`admissible` (else every center check fails) and
    ``m`` must have a :func:`certification_rank` for the mass ``p =``
    :func:`required_mass` ``(delta, eps1, sigma)`` (else no ``R`` exists).

    Raises
    ------
    ValueError
        Naming ``n`` or ``m``, the rule that fails and the smallest value that works.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> bounds.require_certifiable(1000, 10_000, eps1=0.5, sigma=0.25).rank
    9865
    >>> bounds.require_certifiable(1000, 300, eps1=0.5, sigma=0.25)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: m: received 300; with bounds='exact' it can never certify: p^m > alpha2: ...
    """
    bounds = check_bounds(bounds)
    n = check_int(n, "n")
    m = check_int(m, "m")
    delta = check_open_interval(delta, "delta", 0.0, 0.5)
    alpha1 = check_open_interval(alpha1, "alpha1", 0.0, 1.0)
    alpha2 = check_open_interval(alpha2, "alpha2", 0.0, 1.0)
    p = required_mass(delta, eps1, sigma)
    plan_hint = "(cs-fast plan shows what n and m can certify)"
    if not _admissible(n, delta, alpha1, bounds):
        raise ValueError(
            f"n: received {n}; with bounds={bounds!r}, delta = {delta:g} and alpha1 = {alpha1:g} the center "
            f"check can never pass (Lemma 1). Expected n >= {smallest_n(delta, alpha1, bounds)}, or a larger "
            f"delta or alpha1 {plan_hint}")
    rank = certification_rank(m, p, alpha2, bounds)
    if rank.rank is None:
        need = smallest_m(p, alpha2, bounds)
        raise ValueError(
            f"m: received {m}; with bounds={bounds!r} it can never certify: {rank.reason}. Expected "
            + ("a smaller eps1 / sigma" if need is None else f"m >= {need}") + f" {plan_hint}")
    return rank


# ----------------------------------------------------------------------------- plan


def level_at(m, p, alpha2, bounds="exact"):
    """``rank / m`` of :func:`certification_rank` (None when ``m`` cannot certify ``p``).

    The empirical mass of the certified ball; the closer to ``p``, the smaller ``R``.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> p = bounds.required_mass(0.05, 2.0, 1.0)
    >>> bounds.level_at(10_000, p, 0.005), bounds.level_at(10_000, p, 0.005, bounds="paper")
    (0.9865, 0.9996)
    """
    rank = certification_rank(m, p, alpha2, bounds).rank
    return None if rank is None else rank / m


def m_for_level(level, p, alpha2, bounds="exact"):
    r"""The smallest ``m`` whose certified level ``rank / m`` is at most ``level`` (None when none is).

    The level decreases towards ``p`` as ``m`` grows, up to a rounding step of
    ``1/m``; ``m`` is found by bisection between :func:`smallest_m` and a
    doubling upper end, then moved down while the level still holds, so it is
    the first ``m`` of the last run of sizes that reach ``level``.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> p = bounds.required_mass(0.05, 2.0, 1.0)
    >>> bounds.m_for_level(bounds.level_at(10_000, p, 0.005, bounds="paper"), p, 0.005)  # exact rules
    440
    """
    bounds = check_bounds(bounds)
    level = check_real(level, "level")
    low = smallest_m(p, alpha2, bounds)
    if low is None or level <= p:
        return None

    def ok(m):
        got = level_at(m, p, alpha2, bounds)
        return got is not None and got <= level

    high = max(low, 1)
    while not ok(high):
        high *= 2
        if high > 10 ** 12:
            return None
    while low < high:
        mid = (low + high) // 2
        if ok(mid):
            high = mid
        else:
            low = mid + 1
    while low > 1 and ok(low - 1):
        low -= 1
    return low


@dataclass(frozen=True)
class PlanRow:
    """One rule set's line of a :class:`Plan` (see :func:`plan`)."""

    bounds: str
    smallest_n: int
    n_admissible: bool
    smallest_m: Optional[int]
    rank: Optional[int]
    level: Optional[float]
    m_for_paper_level: Optional[int]


@dataclass(frozen=True)
class Plan:
    """What ``n`` and ``m`` can certify, per rule set (:func:`plan`); ``str(plan)`` is its table."""

    h: float
    p: float
    delta: float
    alpha1: float
    alpha2: float
    n: int
    m: int
    rows: tuple

    def row(self, bounds):
        """The :class:`PlanRow` of one rule set."""
        return next(r for r in self.rows if r.bounds == bounds)

    def __str__(self):
        def show(v, fmt="{}"):
            return "-" if v is None else fmt.format(v)

        head = (f"h = eps1/sigma = {self.h:g}: the certified ball must hold p = {self.p:.6g} "
                f"(delta = {self.delta:g}, alpha1 = {self.alpha1:g}, alpha2 = {self.alpha2:g})")
        cols = ("bounds", "smallest n", f"n = {self.n}", "smallest m", f"rank at m = {self.m}", "level k/m",
                "m for the paper's level")
        lines = [head, "  ".join(f"{c:>{max(len(c), 7)}}" for c in cols)]
        for r in self.rows:
            vals = (r.bounds, str(r.smallest_n), "passes" if r.n_admissible else "too small",
                    show(r.smallest_m), show(r.rank), show(r.level, "{:.6f}"), show(r.m_for_paper_level))
            lines.append("  ".join(f"{v:>{max(len(c), 7)}}" for v, c in zip(vals, cols)))
        lines.append("smallest n: from this n on the center check can pass (Lemma 1); smallest m: the fewest "
                     "certification samples that can certify at all; level k/m: the empirical mass of the "
                     "certified ball (closer to p is a smaller R); the last column: the m at which the rule set "
                     "reaches the level the paper's bounds reach at m.")
        return "\n".join(lines)


def plan(h=None, *, eps1=None, sigma=None, delta=DELTA_DEFAULT, alpha1=ALPHA_DEFAULT, alpha2=ALPHA_DEFAULT,
         n=N_DEFAULT, m=M_DEFAULT):
    r"""How many samples a certificate needs, under both rule sets, before any model call.

    Parameters
    ----------
    h : float, optional
        :math:`\epsilon_1 / \sigma`; or give ``eps1`` and ``sigma``.
    eps1, sigma : float, optional
    delta, alpha1, alpha2 : float
    n, m : int
        The sizes to evaluate (whether ``n`` can pass the check, the rank and
        level ``m`` reaches).

    Returns
    -------
    Plan
        Per rule set: :func:`smallest_n`, whether ``n`` is :func:`admissible`,
        :func:`smallest_m`, the rank and level at ``m``, and the ``m`` at which
        it reaches the level the paper's bounds reach at ``m``
        (:func:`m_for_level`). ``print(plan(...))`` shows the table that
        ``cs-fast plan`` prints.

    Examples
    --------
    >>> from cs_fast import bounds
    >>> pl = bounds.plan(2.0, m=10_000)
    >>> pl.row("exact").smallest_m, pl.row("paper").smallest_m
    (314, 9425)
    >>> pl.row("exact").smallest_n, pl.row("paper").smallest_n
    (784, 1199)
    """
    if h is None:
        if eps1 is None or sigma is None:
            raise ValueError("h: received None; expected h = eps1/sigma, or both eps1 and sigma")
        h = check_nonnegative(eps1, "eps1") / check_positive(sigma, "sigma")
    elif eps1 is not None or sigma is not None:
        raise ValueError("h: received h together with eps1/sigma; expected one or the other")
    h = check_nonnegative(h, "h")
    delta = check_open_interval(delta, "delta", 0.0, 0.5)
    alpha1 = check_open_interval(alpha1, "alpha1", 0.0, 1.0)
    alpha2 = check_open_interval(alpha2, "alpha2", 0.0, 1.0)
    n = check_int(n, "n")
    m = check_int(m, "m")
    p = required_mass(delta, h, 1.0)
    paper_level = level_at(m, p, alpha2, "paper")
    rows = []
    for rules in BOUNDS:
        rank = certification_rank(m, p, alpha2, rules).rank
        match = None if paper_level is None else (m if rules == "paper" else m_for_level(paper_level, p, alpha2, rules))
        rows.append(PlanRow(rules, smallest_n(delta, alpha1, rules), _admissible(n, delta, alpha1, rules),
                            smallest_m(p, alpha2, rules), rank, None if rank is None else rank / m, match))
    return Plan(h, p, delta, alpha1, alpha2, n, m, tuple(rows))
