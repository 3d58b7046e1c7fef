r"""The exact center from fast estimates: candidates, then the canonical refinement (CPU, compute only).

What it guarantees
------------------
:func:`min_median` returns what brute force over the *canonical* distances
returns (:func:`cs_fast.kernels.cpu.distances.rows`, the arithmetic of ``to_center``):
the smallest lower median (the ``ceil(n/2)``-th smallest of a row's ``n``
distances) and the smallest index among its ties, bit for bit. The radius is
therefore the lower median of ``to_center(Z, Z[index])``, whatever the fast
path that searched the rows.

The estimates and their bound
-----------------------------
The rows are searched on estimates ``e_ij`` (``l1`` in float32 chunks,
``tv`` on float32 features of the samples centred on one of them, ...), each
within a stated bound of the canonical distance ``D_ij``
(:class:`SumBound`; the derivations are in the metric records of
:mod:`cs_fast.metrics`)::

    lo(e_ij) = (1 - rho) e_ij - (E_i + E_j)  <=  D_ij  <=  (1 + rho) (e_ij + E_i + E_j) = hi(e_ij)

with ``rho`` relative and ``E_i >= 0`` per row. Both ends are non-decreasing
in ``e``, and with ``E_j`` replaced by ``E_max`` they hold for every entry of
a row, so the row's canonical lower median ``M_i`` (the k-th smallest
``D_ij``) lies between ``lo`` and ``hi`` of its estimated lower median
``m_i``, with ``E_max`` for ``E_j``.

Why the candidates hold the winner
----------------------------------
Let ``b`` be the smallest estimated median (row ``r``). The canonical winner
``w`` has ``M_w <= M_r <= hi(b)``, and ``lo(m_w) <= M_w``, so
``m_w <= thr(b) = ((1 + rho)(b + 2 E_max) + 2 E_max) / (1 - rho)``. The
estimate pass (:func:`cs_fast.kernels.cpu.distances.min_median` or
:func:`cs_fast.kernels.cpu.prune.min_median` with ``slack = thr``) computes the
exact estimated median of every row whose median may be at most ``thr`` of
the best so far (``thr`` is non-decreasing and the best only falls, so that
includes every row with ``m_i <= thr(b)``) and proves every other row above
it. The candidates, the rows with ``m_i <= thr(b)``, then get their canonical
rows and exact medians in increasing ``lo``, until ``lo`` exceeds the best
canonical median found (a row whose ``lo`` equals it is still taken when its
index is smaller: ties keep the smallest index).

What it costs
-------------
The estimate pass costs what the fast path costs; each candidate one
canonical row (``n`` canonical distances). For samples around a common base
``E_max`` is about ``u`` times the distances and ``rho`` a few ``d u``, so the
candidates are the rows whose estimated medians lie within about
``2 rho + 4 E_max / b`` of the best: a handful. Adversarial inputs (an
outlier sample that makes ``E_max`` large, medians tied to ``rho``) only
add candidates, never an error.
"""

from dataclasses import dataclass

import numba
import numpy as np

from .. import reductions
from . import distances, prune

#: Relative widening of the threshold and the lower ends: covers the float64 evaluation of a few products.
SAFETY = 2.0 ** -40


@dataclass(frozen=True)
class SumBound:
    """``lo(e) = (1 - rho) e - (E_i + E_j) <= D <= (1 + rho)(e + E_i + E_j)`` for every estimate ``e`` of a pair."""

    rho: float
    E: np.ndarray  # float64 (n,), >= 0

    @property
    def Emax(self):
        return float(self.E.max(initial=0.0))

    def threshold(self, best):
        """``thr(best)``: the estimated median of every row that may canonically beat one of estimated median ``best``
        is at most this."""
        if not best < np.inf:
            return np.inf
        rho, Em = self.rho, self.Emax
        hi = (1.0 + rho) * (best + 2.0 * Em) * (1.0 + SAFETY)
        return (hi + 2.0 * Em) / (1.0 - rho) * (1.0 + SAFETY)

    def lower(self, m, rows):
        """Lower ends of the canonical medians of ``rows`` from their estimated medians ``m``."""
        return (1.0 - self.rho) * m * (1.0 - SAFETY) - (self.E[rows] + self.Emax) * (1.0 + SAFETY)

    def interval(self, e, i):
        """``(lo, hi)`` of the canonical distances of row ``i`` to every row from its estimates ``e`` (one row)."""
        E = (self.E[i] + self.E) * (1.0 + SAFETY)
        return (1.0 - self.rho) * e * (1.0 - SAFETY) - E, (1.0 + self.rho) * (e + E) * (1.0 + SAFETY)


@dataclass(frozen=True)
class Estimate:
    """Estimate features of a sample set: what the fast path reads, and the bound to the canonical distances."""

    data: np.ndarray
    arg: object
    reduction: reductions.Reduction  # a name is taken for its record
    bound: SumBound

    def __post_init__(self):
        object.__setattr__(self, "reduction", reductions.get(self.reduction))


def min_median(reduction, F, arg, est, tile, method="brute", stats=None):
    """Index and radius of brute force over the canonical ``reduction`` distances of ``F``, from estimates.

    Parameters
    ----------
    reduction : str
        The canonical reduction of :func:`cs_fast.kernels.cpu.distances.rows` (``"l1"``, ``"tv"``, ``"tv2"``).
    F, arg : ndarray, object
        The canonical features and the reduction's parameter.
    est : Estimate
        The estimate features of the same samples, their reduction and bound.
    tile : int
        Rows per tile of the estimate pass.
    method : {'brute', 'pruned'}
        The estimate pass: :func:`cs_fast.kernels.cpu.distances.min_median` or
        :func:`cs_fast.kernels.cpu.prune.min_median`.
    stats : dict, optional
        The estimate pass's statistics, plus ``candidates`` (rows given a
        canonical lower end) and ``refined`` (rows whose canonical median was
        computed).

    Returns
    -------
    (int, float)
        The index and the canonical lower median (see the module docstring).
    """
    n = F.shape[0]
    bound = est.bound
    seen = np.full(n, np.inf)
    if method == "pruned":
        prune.min_median(est.reduction, est.data, est.arg, tile, stats=stats, slack=bound.threshold, seen=seen)
    else:
        distances.min_median(est.reduction, est.data, est.arg, tile, slack=bound.threshold, seen=seen, stats=stats)
    return refine(reduction, F, arg, seen, bound, stats, medians=partial_medians(reduction, F, arg, est))


def _estimate_row(est, i):
    """Row ``i`` of the estimate distances (any summation order: the bound holds for every one)."""
    if est.reduction.chunk_estimates:
        return distances.l1_row_estimate(est.data, i, np.empty(est.data.shape[0]))
    return distances.pairwise(est.reduction, est.data[i:i + 1], est.data, est.arg, np.float64)[0]


def partial_medians(reduction, F, arg, est):
    """``medians(rows)`` for :func:`refine`: canonical lower medians that sum only the entries near the median.

    Row ``i``'s estimates give an interval ``[lo_j, hi_j]`` for each canonical
    ``D_ij`` (:meth:`SumBound.interval`), and :func:`median_within` computes
    only the canonical distances near the median, each with the bits
    ``to_center`` gives it.
    """
    n = F.shape[0]
    k = (n + 1) // 2

    def medians(rows):
        return [median_within(reduction, F, arg, int(i), *est.bound.interval(_estimate_row(est, int(i)), int(i)),
                              k)[0] for i in rows]

    return medians


def median_within(reduction, F, arg, i, lo, hi, k):
    """Row ``i``'s canonical ``k``-th smallest distance, given ``lo_j <= D_ij <= hi_j`` for every ``j``.

    With ``L``, ``H`` the ``k``-th smallest ``lo`` and ``hi``, entries with
    ``hi_j < L`` lie below the median (fewer than ``k`` of them), entries with
    ``lo_j > H`` above it; the median is the ``(k - below)``-th smallest
    canonical distance of the rest, the only ones computed
    (:func:`cs_fast.kernels.cpu.distances.rows` on the gathered rows: the same loop on
    the same operands as the whole row). Returns ``(median, entries computed)``.
    """
    L = np.partition(lo, k - 1)[k - 1]
    H = np.partition(hi, k - 1)[k - 1]
    below_mask = hi < L
    below = int(np.count_nonzero(below_mask))
    cols = np.flatnonzero(~below_mask & ~(lo > H))
    D = np.empty((1, cols.size))
    distances.rows(reduction, np.ascontiguousarray(F[cols]), np.ascontiguousarray(F[i:i + 1]), arg, D)
    return float(np.partition(D[0], k - below - 1)[k - below - 1]), int(cols.size)


def refine(reduction, F, arg, seen, bound, stats=None, medians=None, step=None):
    """The canonical brute force among the candidates of the estimated medians ``seen`` (inf: above the threshold).

    ``seen[i]`` is row ``i``'s estimated lower median, or inf where the
    estimate pass proved it above ``bound.threshold`` of the smallest one.
    The candidates (``seen <= threshold``) are taken in increasing lower end
    (:meth:`SumBound.lower`; ties in index order), each with its canonical row
    (:func:`cs_fast.kernels.cpu.distances.rows`) and exact lower median, until the lower
    end passes the best canonical median; a candidate whose lower end equals
    it is still taken when its index is smaller. Returns ``(index, radius)``.
    ``medians(rows)``, the canonical lower medians of an int64 array of rows
    (default: whole rows of :func:`cs_fast.kernels.cpu.distances.rows` and a
    selection, ``step`` rows at a time, one a thread; :func:`min_median`
    passes :func:`partial_medians`, the device
    :func:`cs_fast.kernels.cuda.exact_min_median` its own).
    """
    n = F.shape[0]
    k = (n + 1) // 2
    if medians is None:
        step = max(1, numba.get_num_threads())
        D = np.empty((step, n))

        def medians(rows):
            distances.rows(reduction, F, np.ascontiguousarray(F[rows]), arg, D[:rows.size])
            return [float(distances.kth_smallest(D[r].copy(), k)) for r in range(rows.size)]
    step = step or 1
    cand = np.flatnonzero(seen <= bound.threshold(float(seen.min())))
    lower = bound.lower(seen[cand], cand)
    order = np.argsort(lower, kind="stable")  # cand is sorted: equal lower ends keep the index order
    cand, lower = cand[order], lower[order]
    best, best_index, refined = np.inf, -1, 0
    pos = 0
    while pos < cand.size and lower[pos] <= best:
        take = []
        while pos < cand.size and len(take) < step and lower[pos] <= best:
            i = int(cand[pos])
            if not (lower[pos] == best and i > best_index):  # a tie on the lower end: only a smaller index can win
                take.append(i)
            pos += 1
        if not take:
            continue
        for i, m in zip(take, medians(np.array(take, dtype=np.int64))):
            refined += 1
            if m < best or (m == best and i < best_index):
                best, best_index = m, i
    if stats is not None:
        stats.update(candidates=int(cand.size), refined=refined)
    return best_index, best
