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
  (:mod:`cs_fast.kernels.mixed_cpu`); ``weighted`` when it carries weights;
- ``box``: the closed-form IoU of two boxes, with its own row kernels;
- ``image``: the argument is a packed image shape (``tv``, ``tv2``);
- ``bounded``: every distance lies in ``[0, 1]`` and a constant absolute
  rounding margin is enough (``box``, ``mask``);
- ``chunk_estimates``: the fast path reads float32 chunk sums with a bound
  (``l1``), rather than the canonical rows.

Nothing here compiles or imports numba: the host kernels are reached through
:func:`cs_fast.kernels.cpu` functions that take a record, the device kernels
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
    chunk_estimates: bool = False
    row_kernels: bool = False

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

    @property
    def squared_metric(self):
        """Whether its values are squares of a metric (``sq``, ``wsq``): bounds are taken on their roots."""
        return self.gram and not self.root


BOX = Reduction("box", "box_pair", box=True, bounded=True)
MASK = Reduction("mask", "mask_pair", bounded=True)
L1 = Reduction("l1", "l1_pair", chunk="l1_pair", chunk_estimates=True)
SQ = Reduction("sq", "sq_pair", chunk="sq_pair", gram=True, row_kernels=True)
L2 = Reduction("l2", "l2_pair", chunk="sq_pair", root=True, squared_name="sq", gram=True, row_kernels=True)
WSQ = Reduction("wsq", "wsq_pair", gram=True, weighted=True, row_kernels=True)
TV = Reduction("tv", "tv_pair", image=True, row_kernels=True)
TV2 = Reduction("tv2", "tv2_pair", image=True, row_kernels=True)
GROUPED_L2 = Reduction("grouped_l2", "grouped_l2_pair")
ANGULAR = Reduction("angular", "angular_pair")

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
