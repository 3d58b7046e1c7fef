r"""The statistics of center smoothing: pure functions on the CPU.

Notation as in the paper: ``n`` samples pick the center, ``m`` samples certify
it, :math:`\Delta` is the extra probability mass the center's ball must hold
beyond one half, :math:`\alpha_1, \alpha_2` are failure probabilities.
"""

import math

import numpy as np

from ._checks import check_int, check_nonnegative, check_open_interval, check_positive, check_real


def smoothing_margin(n, alpha1):
    r"""Hoeffding margin :math:`\Delta_1 = \sqrt{\ln(2/\alpha_1) / (2n)}`.

    Guarantee: for ``n`` i.i.d. samples, the empirical fraction of samples in
    any fixed ball differs from its probability by more than
    :math:`\Delta_1` with probability at most :math:`\alpha_1/2` per side.
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
    """
    p = check_real(p, "p")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p: received {p}; expected a probability in [0, 1]")
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
    """
    d = np.asarray(distances, dtype=np.float64).reshape(-1)
    if d.size == 0:
        raise ValueError("distances: received an empty array; expected at least one distance")
    if not np.isfinite(d).all():
        raise ValueError(f"distances: {int((~np.isfinite(d)).sum())} entries are NaN or inf; expected finite values")
    q = check_real(q, "q")
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q: received {q}; expected a level in (0, 1] (q > 1 means: abstain)")
    k = order_rank(q, d.size)
    return float(np.partition(d, k - 1)[k - 1])


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
    """
    R = check_nonnegative(R, "R")
    gamma = check_positive(gamma, "gamma")
    beta = check_nonnegative(beta, "beta")
    return gamma * (1.0 + beta) * R
