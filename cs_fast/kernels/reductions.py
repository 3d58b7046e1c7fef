r"""The pairwise reductions, one frozen record each: what every kernel needs to know about one.

A metric (:mod:`cs_fast.metrics`) is a featurize step followed by one of these
reductions over pairs of featurized rows. The record says, as data, everything
the drivers used to decide by testing the reduction's name:

- ``pair``: the name of its pair function in :mod:`cs_fast.kernels.pair`
  (written once, compiled for the host and the device);
- ``chunk`` and ``root``: the tiled kernels sum the rows in chunks with the
  pair function ``chunk`` and take a square root at the end when ``root`` is set
  (``l2`` is ``sq`` followed by :math:`\sqrt{\cdot}`: :attr:`Reduction.squared`
  names the reduction whose values it is the root of);
- ``gram``: a sum of squared differences
  :math:`\sum_i w_i (a_i - b_i)^2`, which the float32 product
  :math:`|a|^2 + |b|^2 - 2 a \cdot b` estimates with a bound
  (:mod:`cs_fast.kernels.cpu.mixed`); ``weighted`` when it carries weights;
- ``box``: the closed-form IoU of two boxes, with its own row kernels;
- ``image``: the argument is a packed image shape (``tv``, ``tv2``);
- ``bounded``: every distance lies in ``[0, 1]`` and a constant absolute
  rounding margin is enough (``box``, ``mask``, ``angular``);
- ``exact_features``: its featurized rows are float64 or exact counts whatever
  the input's dtype (``box``, ``mask``), so float64 rounding bounds apply;
- ``chunk_estimates``: the fast path reads float32 chunk sums with a bound
  (``l1``), rather than the canonical rows;
- ``estimate_only``: it serves only the fast paths' estimates, so its pair
  function may be the reassociated one (``grouped_l2``);
- ``row_kernels``: its canonical distances have row kernels of their own
  (the long sums); the others use the strict pair functions row by row;
- ``pruned_from``: the number of samples from which ``min_median``'s
  ``method="auto"`` takes the pruned search on the host (None: never).
  Measured (``cs-fast bench --center``, ``bench/results/prune/``): boxes on one
  thread 0.37x of brute force at n = 3000, 1.26x at 1e4, 4.3x at 1e5 (their
  brute-force counting pass is already cheap at small n); tv on the digits
  model 1.23x at 1e4; the sums of squares are one float32 GEMM for all rows
  (:mod:`cs_fast.kernels.mixed_precision`), which the row-by-row float64 sums
  of the pruned search lose to by 6-13x.

Nothing here compiles or imports numba: the host kernels are reached through
:mod:`cs_fast.kernels.cpu.distances` functions that take a record, the device kernels
through :mod:`cs_fast.kernels.cuda`, each built on first use.
"""

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True, eq=False)
class Reduction:
    """One pairwise reduction of featurized rows (see the module docstring).

    Records are singletons (compared by identity); :func:`get` returns them.
    ``str(record)`` is its name, which is also the key of its compiled kernels.
    """

    name: str
    pair: str
    chunk: Optional[str] = None
    root: bool = False
    squared_name: Optional[str] = None
    gram: bool = False
    weighted: bool = False
    box: bool = False
    image: bool = False
    bounded: bool = False
    exact_features: bool = False
    chunk_estimates: bool = False
    estimate_only: bool = False
    row_kernels: bool = False
    pruned_from: Optional[int] = 0

    def __str__(self):
        return self.name

    def __repr__(self):
        return f"Reduction({self.name!r})"

    @property
    def tiled(self):
        """Whether the tiled (chunk-summed) kernels serve it: ``chunk`` is set."""
        return self.chunk is not None

    @property
    def squared(self):
        """The reduction whose values this one is the square root of (itself when ``root`` is unset)."""
        return get(self.squared_name) if self.root else self

    @property
    def gemm(self):
        """Whether the unweighted float32 product (cuBLAS, the mixed CPU path) estimates it."""
        return self.gram and not self.weighted

    def auto_method(self, n):
        """``min_median``'s ``method="auto"`` for ``n`` samples: ``"pruned"`` from :attr:`pruned_from` on."""
        return "pruned" if self.pruned_from is not None and n >= self.pruned_from else "brute"

    @property
    def squared_metric(self):
        """Whether its values are squares of a metric (``sq``, ``wsq``): bounds are taken on their roots."""
        return self.gram and not self.root


BOX = Reduction("box", "box_pair", box=True, bounded=True, exact_features=True, pruned_from=10_000)
MASK = Reduction("mask", "mask_pair", bounded=True, exact_features=True)
L1 = Reduction("l1", "l1_pair", chunk="l1_pair", chunk_estimates=True)
SQ = Reduction("sq", "sq_pair", chunk="sq_pair", gram=True, row_kernels=True, pruned_from=None)
L2 = Reduction("l2", "l2_pair", chunk="sq_pair", root=True, squared_name="sq", gram=True, row_kernels=True,
               pruned_from=None)
WSQ = Reduction("wsq", "wsq_pair", gram=True, weighted=True, row_kernels=True, pruned_from=None)
TV = Reduction("tv", "tv_pair", image=True, row_kernels=True)
TV2 = Reduction("tv2", "tv2_pair", image=True, row_kernels=True)
GROUPED_L2 = Reduction("grouped_l2", "grouped_l2_pair", estimate_only=True)
ANGULAR = Reduction("angular", "angular_pair", bounded=True)

_ALL = {r.name: r for r in (BOX, MASK, L1, SQ, L2, WSQ, TV, TV2, GROUPED_L2, ANGULAR)}
NAMES = tuple(_ALL)


def get(reduction):
    """The record of ``reduction`` (a record, returned as it is, or its name).

    Raises
    ------
    ValueError
        For an unknown name, naming the argument and the known names.
    """
    if isinstance(reduction, Reduction):
        return reduction
    try:
        return _ALL[reduction]
    except (KeyError, TypeError):
        raise ValueError(
            f"reduction: received {reduction!r}; expected one of {', '.join(NAMES)}"
        ) from None
