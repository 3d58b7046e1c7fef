"""The CPU wing: numba kernels compiled once per machine and loaded from numba's on-disk cache.

Imports point down this list only:

- :mod:`~cs_fast.kernels.cpu.runtime`: how a kernel is compiled and cached (``kernel``, ``specialize``), and
  the first-compile notice;
- :mod:`~cs_fast.kernels.cpu.distances`: the canonical float64 distance rows of every reduction, dense
  matrices, the float32 fast paths and the brute-force center;
- :mod:`~cs_fast.kernels.cpu.mixed`: the sums of squares as one float32 product with a rigorous bound,
  float64 only where the bound cannot decide;
- :mod:`~cs_fast.kernels.cpu.bounding`: the pruned search's exact row selections, the floors of row medians
  and the triangle-inequality bounds, with the rows' states;
- :mod:`~cs_fast.kernels.cpu.box32`: the pruned search's boxes in float32, bounded and counted within a
  rigorous margin;
- :mod:`~cs_fast.kernels.cpu.prune`: the exact center with triangle-inequality pruning, its driver (its tunables
  are a :class:`~cs_fast.kernels.cpu.prune.PruneConfig`);
- :mod:`~cs_fast.kernels.cpu.exact`: the center searched on fast estimates and refined on the canonical
  distances.

The math they compile is shared with the CUDA wing: :mod:`cs_fast.kernels.pair`,
:mod:`cs_fast.kernels.select`, :mod:`cs_fast.kernels.features`, :mod:`cs_fast.kernels.mixed_precision`,
retargeted by :mod:`cs_fast.kernels.retarget`; what each reduction is, by :mod:`cs_fast.kernels.reductions`.
"""
