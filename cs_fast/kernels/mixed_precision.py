"""Float32 GEMM distances with a rigorous error bound (``sq`` and ``l2``): the bound, written once.

What it guarantees
------------------
For featurized rows ``F_i`` (float32 or float64) let ``D64_ij`` be the
*canonical* float64 squared distance: ``sum_k (F_ik - F_jk)**2`` summed
directly in float64 by :func:`cs_fast.kernels.cpu.distances.sq_rows` (on the device,
by the device's own direct kernel). :func:`sq_interval` turns the
estimate ``dt`` that a float32 GEMM gives, and two row norms, into an interval
``[lo, hi]`` that provably contains ``D64_ij``. Callers decide with the
intervals and recompute in float64 only what the intervals cannot decide:

* ``min_median``: a row whose median interval starts above the smallest
  median upper bound cannot win; the rows left are recomputed with the
  canonical kernel and the winner taken among them. The index and radius are
  then *identical, bit for bit,* to brute force over the canonical distances
  (the lower median of ``to_center(Z, Z[index])``). On the host
  (:mod:`cs_fast.kernels.cpu.mixed`) two more consequences of the same
  intervals save work. (a) Counting: if ``U`` is the upper end of some row's
  median interval and ``lo(tau_i; a_i, max_j a_j) > U``, every estimate
  ``dt_ij >= tau_i`` has ``D64_ij >= lo > U`` (the lower end is
  non-decreasing in ``dt`` and non-increasing in ``a_j``, also as computed:
  rounding is monotone); a row with fewer than ``k`` estimates below
  ``tau_i`` has fewer than ``k`` canonical distances ``<= U``, so its median
  exceeds ``U`` and it cannot win (for ``l2``, ``U`` is first raised to the
  top of its square root's rounding interval, so that ties of the roots are
  kept). (b) Exact median from part of a row: with ``L``, ``H`` the ``k``-th
  smallest lower and upper ends of a row's per-entry intervals, entries with
  ``hi < L`` are below the median (fewer than ``k`` of them), entries with
  ``lo > H`` above it, and the median is the ``(k - below)``-th smallest
  canonical distance of the rest, the only ones summed in float64.
* ``cdist``/``pdist`` (float32 output): an entry is kept when
  ``hi - lo <= CDIST_RTOL * lo`` (both ``dt`` and ``D64_ij`` lie in
  ``[lo, hi]``, so its relative error is at most ``CDIST_RTOL = 2**-10``
  against ``D64_ij``), else recomputed in float64; then rounded to float32
  (``l2``: the float32 square root of that, one more float32 rounding).
  The stated accuracy of float32 ``cdist``/``pdist`` for ``sq``/``l2`` is
  therefore relative ``2**-10`` plus float32 rounding, whatever the data.

The computation being bounded
-----------------------------
``s`` is a shift (the column mean, in the precision of ``F``; translating
every row by one vector changes no distance). ``C_i = fl(F_i - s)`` and
``X_i = fl32(C_i)``, the centred rows the GEMM reads (one float32 rounding
for float32 ``F``, one float64 and one float32 rounding for float64 ``F``),
``na_i = fl64(sum_k X_ik**2)`` (float64 row
norms of the float32 rows), ``G_ij = fl32(X_i . X_j)`` (the float32 GEMM:
BLAS on the CPU, cuBLAS on the GPU, possibly with TF32 inputs) and
``dt_ij = fl(fl(na_i + na_j) - 2 G_ij)`` in float64 (or float32, step 3).

Derivation (u = 2**-24 float32, u_in = input rounding of the GEMM: 0, or
2**-11 for TF32, v = 2**-53 float64, gamma_m(x) = m x / (1 - m x),
t = 2**-126 the smallest normal float32, d the dimension)
----------------------------------------------------------------------------
1. GEMM (Higham, *Accuracy and Stability*, 3.1, any summation order, FMA or
   not): ``|G_ij - X_i.X_j| <= c a_i a_j + 2 d t`` with
   ``c = (2 u_in + u_in**2)(1 + gamma_d(u)) + gamma_d(u)`` and
   ``a_i >= |X_i|`` (the input rounding to TF32 perturbs each product by at
   most ``2 u_in + u_in**2``; ``2 d t`` covers underflow and flush-to-zero of
   products and partial sums).
2. Norms: ``na_i`` sums ``d`` non-negative exact float64 squares, so
   ``|na_i - |X_i|**2| <= gamma_d(v) |X_i|**2``; ``a_i`` is
   ``sqrt(na_i (1 + gamma_d(v))) (1 + 2 v)``, an upper bound of ``|X_i|``.
3. ``dt`` is formed in a precision of unit roundoff ``ue`` (``v``, or ``u``
   where the CPU forms float32 estimates to select on them at float32 speed):
   the norms rounded to it are within ``beta = gamma_d(v) + ue (1 + gamma_d(v))``
   of ``|X_i|**2`` relatively, and its two operations add at most
   ``2 ue (1 + ue)(na_i + na_j + 2 |G_ij|) <= 2 ue (1 + ue)(2 + beta + c)(a_i**2 + a_j**2)``.
   With 1-3, for ``D32_ij = |X_i - X_j|**2 = |X_i|**2 + |X_j|**2 - 2 X_i.X_j``:
   ``|dt - D32| <= E_ij = 2 c a_i a_j + c64 (a_i**2 + a_j**2) + 4 (d + 1) t``,
   ``c64 = beta + 2 ue (1 + ue)(2 + beta + c)``.
4. Centring and conversion: ``X_i = F_i - s + e_i`` with
   ``|e_ik| <= rho |X_ik| + t`` (one float64 and one float32 rounding,
   ``rho = (u + v + u v) / (1 - u - v - u v)``; ``t`` covers float32
   underflow), so by the triangle inequality
   ``| |X_i - X_j| - |F_i - F_j| | <= eps_ij = rho (a_i + a_j) + 2 sqrt(d) t``.
5. The canonical sum: each term ``fl(F_ik - F_jk)**2`` carries at most
   ``(1 + v)**3`` and the sum of ``d`` non-negative terms ``gamma_{d-1}(v)``
   in any order, so ``|D64 - |F_i - F_j|**2| <= g |F_i - F_j|**2`` with
   ``g = gamma_{d+2}(v)``.

Hence, with ``S = |F_i - F_j|``, ``sqrt(max(dt - E, 0)) - eps <= S <= sqrt(dt + E) + eps``
and::

    lo = (1 - g) max(sqrt(max(dt - E, 0)) - eps, 0)**2  <=  D64_ij
    hi = (1 + g) (sqrt(dt + E) + eps)**2               >=  D64_ij

Both ends are non-decreasing in ``dt``, ``E`` and ``eps`` grow with
``a_j``: so the k-th smallest ``dt`` of a row, with ``a_j`` replaced by the
largest norm, bounds the row's k-th smallest ``D64`` (its lower median) the
same way. That is how ``min_median`` needs one selection per row. The float64
evaluation of ``lo``, ``hi`` itself (a dozen roundings of relative size
``v``) is covered by widening every error term and both ends by
``SAFETY = 2**-40``.

The ``l2`` distance is ``sqrt`` of ``sq`` (correctly rounded, monotone), so
the same intervals serve it after ``sqrt``.

Weighted ``sqfeat`` (``wsq``): the canonical distance is
``sum_k w_k fl(F_ik - F_jk)**2`` (the samples' difference first; four
roundings a term), and the GEMM reads the centred rows scaled after centring,
``X_ik = fl32(fl64(fl64(F_ik - s_k) r_k))`` with ``r_k = fl(sqrt(w_k))``. Step
4 then has three roundings (``rho`` from ``(1 + u)(1 + v)**3``, counting the
difference in float64), and step 5 compares with ``|r (F_i - F_j)|**2``,
whose ``r_k**2 = w_k (1 + v)**2``: ``g = gamma_{d+6}(v)``
(``sq_coefficients(weighted=True)``). Everything else is unchanged.

The bound is worst case (``d u`` where random rounding gives ``sqrt(d) u``):
sound whatever the BLAS does, loose by design. For samples around a common
base the centred norms are about the distances, so ``E / D`` is about
``d u`` (2.4e-4 at d = 4096): the intervals are narrow against the spread of
the medians and few rows need a recompute.

:func:`sq_interval` is plain Python over scalars: ``numba.njit`` compiles it
for the CPU kernels and ``numba.cuda.jit(device=True)`` for the device ones,
so the two targets share one bound.
"""

import math

U32 = 2.0 ** -24  # float32 unit roundoff
UTF32 = 2.0 ** -11  # TF32 inputs keep 10 mantissa bits
U64 = 2.0 ** -53  # float64 unit roundoff
TINY32 = 2.0 ** -126  # smallest normal float32: underflow / flush-to-zero allowance
SAFETY = 2.0 ** -40  # widening that covers the float64 evaluation of the bound itself
CDIST_RTOL = 2.0 ** -10  # cdist/pdist float32 output: relative error at most this (else float64)
# Above this squared norm the float32 GEMM could overflow: the callers compute in float64 instead.
MAX_NORM2 = 2.0 ** 100


def _gamma(m, u):
    mu = m * u
    if mu >= 0.5:
        raise ValueError(f"d: {m} features is beyond the float error analysis (m u = {mu:.3g} >= 0.5)")
    return mu / (1.0 - mu)


def sq_coefficients(d, input_roundoff=0.0, estimate_roundoff=U64, weighted=False):
    """The constants of :func:`sq_interval` for dimension ``d``.

    Parameters
    ----------
    d : int
        Features per row (the GEMM's inner dimension).
    input_roundoff : float
        Unit roundoff applied to the GEMM's float32 inputs by the hardware:
        0 for a plain float32 GEMM, :data:`UTF32` where TF32 may be used.
    estimate_roundoff : float
        Unit roundoff of the precision ``dt`` is formed in (the norms are
        rounded to it, then added and the doubled product subtracted):
        :data:`U64`, or :data:`U32` for float32 estimates.
    weighted : bool
        The rows are weighted (``sqfeat`` with weights): the GEMM reads
        ``X_i = fl32(fl64(fl64(F_i - s) * r))`` with ``r = fl(sqrt(w))`` (three
        roundings, ``rho = (1 + u)(1 + v)**2 - 1`` over ``1 -`` itself), and the
        canonical distance is ``sum_k w_k fl(F_ik - F_jk)**2`` (four roundings a
        term, and ``r_k**2 = w_k (1 + v)**2``: ``g = gamma_{d+6}(v)`` against
        ``|r (F_i - F_j)|**2``).

    Returns
    -------
    tuple of float
        ``(c, c64, rho, g, abs_sq, abs_eps)`` as in the module docstring
        (``abs_sq = 4 (d + 1) t``, ``abs_eps = 2 sqrt(d) t``).
    """
    d = int(d)
    if d < 1:
        raise ValueError(f"d: received {d}; expected at least one feature")
    ue = float(estimate_roundoff)
    gd = _gamma(d, U32)
    c = (2.0 * input_roundoff + input_roundoff ** 2) * (1.0 + gd) + gd
    gv = _gamma(d, U64)
    beta = gv + ue * (1.0 + gv)  # the norms: float64 sum, then rounded to the estimate's precision
    c64 = beta + 2.0 * ue * (1.0 + ue) * (2.0 + beta + c)
    r = (1.0 + U32) * (1.0 + U64) ** (3 if weighted else 1) - 1.0
    rho = r / (1.0 - r)
    g = _gamma(d + (6 if weighted else 2), U64)
    return (c, c64, rho, g, 4.0 * (d + 1) * TINY32, 2.0 * math.sqrt(d) * TINY32)


def norm_upper(na, d):
    """Upper bounds ``a_i >= |X_i|`` from the computed float64 norms² ``na`` (step 2)."""
    import numpy as np

    return np.sqrt(na * (1.0 + _gamma(int(d), U64))) * (1.0 + 2.0 * U64)


def sq_interval(dt, ai, aj, c, c64, rho, g, abs_sq, abs_eps):
    """``(lo, hi)`` with ``lo <= D64 <= hi`` for a GEMM estimate ``dt`` (see the module docstring).

    ``ai``, ``aj`` are upper bounds of the float32 centred rows' norms
    (:func:`norm_upper`); the rest is :func:`sq_coefficients`.
    """
    grow = 1.0 + SAFETY
    e = (2.0 * c * ai * aj + c64 * (ai * ai + aj * aj) + abs_sq) * grow
    eps = (rho * (ai + aj) + abs_eps) * grow
    low = dt - e
    s = math.sqrt(low) if low > 0.0 else 0.0
    s = s * (1.0 - SAFETY) - eps
    lo = (1.0 - g) * s * s * (1.0 - SAFETY) if s > 0.0 else 0.0
    high = dt + e
    t = math.sqrt(high) * grow + eps if high > 0.0 else eps
    hi = (1.0 + g) * t * t * grow
    return lo, hi
