"""CUDA kernels (numba.cuda): compute only, no validation, no policy.

Same drivers as :mod:`cs_fast.kernels.cpu`, on numba device arrays (the
bindings wrap torch / CuPy tensors with ``cuda.as_cuda_array``; nothing is
copied to the host except the scalars a driver returns). Inputs are featurized,
C-contiguous 2-D arrays (see :mod:`cs_fast.metrics`); distances are
accumulated in float64, except float32 ``cdist``/``pdist`` of the long sums
(float32 chunks flushed into float64, within a derived bound). A reduction is
named or given as its record (:mod:`cs_fast.kernels.reductions`): the record's
fields, never its name, choose the kernels.

Nothing compiles, and numba-cuda is not even imported, until the first call:
importing this package works on a machine without numba-cuda, and a call there
raises an ``ImportError`` that names the missing package. Kernels are built by
memoized factories, keyed on the reduction's record, the block sizes and the
fields of :class:`DeviceConfig` they compile in; the tunables are arguments
(``config=``, default :data:`DEFAULT`), never module state.

Where work goes: every launch, copy and scratch allocation reads the stream
and allocator of :func:`launch_context`, which the bindings set per call to
the caller's torch / CuPy stream and caching pool
(:func:`cs_fast.bindings.arrays.launch_settings`).

Layout (each module imports only the ones listed before it):

* :mod:`~cs_fast.kernels.cuda.runtime`: loading numba-cuda, simulator
  detection and block sizes, grid helpers, streams and allocation, and the
  :class:`DeviceConfig` of tunables.
* :mod:`~cs_fast.kernels.cuda.radix`: the exact radix select (device
  functions, one-block-a-row and multi-block kernels, :func:`order_statistic`).
* :mod:`~cs_fast.kernels.cuda.direct`: the generic and tiled distance
  kernels, the long sums' one device arithmetic, :func:`to_center` and
  :func:`paired`.
* :mod:`~cs_fast.kernels.cuda.blocked`: the register-blocked kernels of the
  long sums, narrow (float32 sums, float64 flushes) and wide, with their
  error bound.
* :mod:`~cs_fast.kernels.cuda.count`: the fused counting pass of
  ``min_median`` (float64, and float32 ``l1`` within a margin).
* :mod:`~cs_fast.kernels.cuda.box`: the box ``min_median``'s float32 count
  with its rigorous margin, fused with the select.
* :mod:`~cs_fast.kernels.cuda.mixed`: ``sq``/``l2`` through a float32 cuBLAS
  GEMM (CuPy) with the mixed-precision bound and float64 refinement.
* :mod:`~cs_fast.kernels.cuda.prune`: the exact center with
  triangle-inequality pruning on the device.
* :mod:`~cs_fast.kernels.cuda.brute`: the drivers on top: :func:`pairwise`,
  the streamed :func:`min_median` and :func:`exact_min_median`.
* :mod:`~cs_fast.kernels.cuda.featurize`: device featurize and the bindings'
  small helpers (row checks, ledgers, ``pdist`` condensing).

Rounding: one arithmetic per pair on the device. ``pairwise`` (float64
output), ``to_center``, ``paired``, the fused counts, the pruned center and
the certification distances compute a pair the same way: the long sums in the
tiled kernel's chunk order, everything else with the pair function. The
selection and the counts are exact, so ``min_median`` equals brute force on
the device's own distances bit for bit, and its radius is the lower median of
the device's ``to_center`` row. The fused count calls the very device
functions of ``pairwise`` in the same order (should the float64 tiled kernel
change its summation order, :mod:`cs_fast.kernels.cuda.count` and
``to_center`` must follow; ``tests/cuda_sim/test_fused_count.py`` and
``tests/cuda_sim/test_exact_device.py`` fail until they do). ``tv``'s fast
kernels read its centred estimate features: :func:`exact_min_median` searches
on them with a slack and refines the candidates with the canonical distances.
The distances match the CPU's within each metric's stated bound, not bit for
bit: each backend sums the long rows in its own order, and NVVM contracts
``a * b + c`` into FMA even without fastmath (numba-cuda has no switch for
``-fma=0``; the same code contracts the same way in every kernel that calls
it; under the simulator nothing contracts). ``d(x, x) = 0`` still holds for
every reduction.

Under the simulator (``NUMBA_ENABLE_CUDASIM=1``), where every CUDA thread is
a Python thread, tiles are ``runtime.SIM_TILE`` wide and select blocks 4 threads, so
small test inputs still cross tile boundaries; every kernel is generic in
both sizes.
"""

from . import blocked, box, brute, count, direct, featurize, mixed, prune, radix, runtime
from .brute import exact_min_median, min_median, pairwise, seed_rows
from .direct import paired, to_center
from .mixed import gemm_input_roundoff, sq_min_median_gemm, sq_pairwise_gemm
from .radix import key_value, order_statistic
from .runtime import (
    DEFAULT,
    DEFAULT_MAX_MEMORY,
    DeviceConfig,
    block_sizes,
    cuda_module,
    current_stream,
    empty,
    fetch,
    kernel_arg,
    launch,
    launch_context,
    upload,
)

__all__ = [
    "DEFAULT", "DEFAULT_MAX_MEMORY", "DeviceConfig", "block_sizes", "cuda_module", "current_stream", "empty",
    "exact_min_median", "fetch", "gemm_input_roundoff", "kernel_arg", "key_value", "launch", "launch_context",
    "min_median", "order_statistic", "paired", "pairwise", "seed_rows", "sq_min_median_gemm", "sq_pairwise_gemm",
    "to_center", "upload",
]
