"""The bottom of the CUDA wing: loading numba-cuda, block sizes, streams, allocation and the tunables.

Every other module of :mod:`cs_fast.kernels.cuda` imports this one and
nothing here imports them. Nothing compiles and numba-cuda is not imported
until :func:`cuda_module` is first called, so the package imports on a
machine without numba-cuda.
"""

import contextlib
import contextvars
from dataclasses import dataclass

import numpy as np

TILE = 16  # 2-D blocks are TILE x TILE threads; the tiled kernels stage TILE features a step
SIM_TILE = 4  # under the simulator (a Python thread per CUDA thread) small blocks keep tests fast
LANES = 32  # to_center of the long reductions: a warp of lanes per row
SIM_LANES = 4
ROWS_PER_BLOCK = 8  # rows (warps) per to_center block: 256 threads on a GPU
REDUCE_THREADS = 256  # threads of the one-block argmin kernels (a power of two)
MAX_GRID_Y = 65535  # CUDA's limit on gridDim.y
DEFAULT_MAX_MEMORY = 1 << 30  # bytes of device scratch min_median may hold at once


@dataclass(frozen=True)
class DeviceConfig:
    """The tunables of the device kernels, passed as an argument (default: :data:`DEFAULT`).

    None of them changes a result: every count, select and margin is exact
    whatever they are (the tests run them at extreme values to exercise the
    edges). Kernels that compile a field in are memoized on it.

    Attributes
    ----------
    shared_keys : int
        Keys of a row's radix select held in shared memory once its
        candidates fit (8 bytes each: 16 KiB a block, so 8 blocks of 256
        threads an SM still fit an H100's 228 KiB). Rows up to this long are
        read from global memory once; longer ones until the candidates drop
        below it.
    seed_rows : int
        Rows whose exact medians seed ``min_median``'s best (for ``n`` of at
        least twice this), so that pruning does not depend on row order.
    box_margin, box_tiny : float
        The float32 box count's rigorous margin (derived in
        :mod:`cs_fast.kernels.cuda.box`) and its underflow floor.
    box_check_sweeps : int
        The box count checks whether its row is decided every this many
        sweeps of a block's threads over the columns (two barriers a check).
    count_check_tiles : int
        The fused count (:mod:`cs_fast.kernels.cuda.count`) checks which of
        its rows are decided every this many column tiles (three barriers a
        check).
    l1_count_margin, l1_count_tiny : float
        The float32 ``l1`` count's relative margin and underflow floor
        (derived in :mod:`cs_fast.kernels.cuda.count`).
    l1_float32_count : bool
        Count ``l1`` on float32 rows in float32 within the margin (False: in
        float64, as every other reduction).
    l1_blocked_count : bool
        The float32 ``l1`` count over register-blocked tiles (False: the
        one-pair-a-thread float32 count).
    flush : int
        Features the register-blocked kernels (:mod:`cs_fast.kernels.cuda.blocked`)
        sum before a flush into the float64 total: a multiple of the staged step.
    select_per_thread : int
        Values per thread and pass of ``order_statistic``'s histogram before
        another block is worth launching.
    """

    shared_keys: int = 2048
    seed_rows: int = 64
    box_margin: float = 2.0 ** -15
    box_tiny: float = 2.0 ** -100
    box_check_sweeps: int = 8
    count_check_tiles: int = 4
    l1_count_margin: float = 2.0 ** -17
    l1_count_tiny: float = 2.0 ** -100
    l1_float32_count: bool = True
    l1_blocked_count: bool = True
    flush: int = 32
    select_per_thread: int = 8


DEFAULT = DeviceConfig()

cuda = None  # numba.cuda once loaded: a module global, as the CUDA simulator requires


def cuda_module():
    """Return ``numba.cuda``, or raise an ImportError that says what to install."""
    global cuda
    if cuda is not None:
        return cuda
    try:
        from numba import cuda as module
    except ImportError as err:
        raise ImportError(
            "cs_fast.kernels.cuda needs the numba-cuda package (the CUDA target of numba); "
            "install it with: pip install -e '.[cuda]' in the cs_fast clone (or: pip install numba-cuda)"
        ) from err
    cuda = module
    return cuda


# Which block sizes kernels are built and launched with: None follows numba's simulator switch.
_SIZES = contextvars.ContextVar("cs_fast_cuda_small_blocks", default=None)


def simulator_on():
    """Whether numba's CUDA simulator is on: device memory is then host memory."""
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


def simulated():
    """Whether kernels take the simulator's small blocks (numba's CUDA simulator is on, unless
    :func:`block_sizes` says otherwise)."""
    small = _SIZES.get()
    return simulator_on() if small is None else small


@contextlib.contextmanager
def block_sizes(small):
    """Build and launch kernels with the simulator's small blocks (``small``) or a GPU's inside the block.

    Under the simulator every CUDA thread is a Python thread, so kernels take
    small blocks there; the tests run the GPU's sizes under the simulator
    with ``block_sizes(False)``. Kernels are memoized per size.
    """
    token = _SIZES.set(bool(small))
    try:
        yield
    finally:
        _SIZES.reset(token)


def tile():
    """Threads a side of the 2-D tiled kernels' blocks: :data:`TILE`, or :data:`SIM_TILE` under the simulator."""
    return SIM_TILE if simulated() else TILE


def lanes():
    """Lanes a row of the warp-per-row kernels: :data:`LANES`, or :data:`SIM_LANES` under the simulator."""
    return SIM_LANES if simulated() else LANES


def blocks(count, per_block):
    """Blocks of ``per_block`` that cover ``count`` items."""
    return (count + per_block - 1) // per_block


def select_threads(length, cap):
    """Warp multiple covering ``length``, at most ``cap``: short rows idle no extra warps.

    Under the simulator every thread is a Python thread and every barrier a
    Python lock round: 4 threads a block (the kernels work for any count).
    """
    if simulated():
        return 4
    return int(min(cap, max(32, 32 * blocks(length, 32))))


def key_params(dtype):
    """(bits, sign, full-mask) for the order keys of a float dtype, and its uint view."""
    if dtype == np.float64:
        return 64, np.uint64(1 << 63), np.uint64(0xFFFFFFFFFFFFFFFF), np.uint64
    if dtype == np.float32:
        return 32, np.uint64(1 << 31), np.uint64(0xFFFFFFFF), np.uint32
    raise TypeError(f"distances: received dtype {dtype}; expected float32 or float64")


def kernel_arg(arg):
    """A reduction's parameter as the kernels take it: an int, or (weighted sqfeat) the device weights as they are."""
    return arg if hasattr(arg, "shape") else int(arg)


# Where device work goes: the stream every launch and copy is queued on, and the allocator
# of every scratch array. The bindings decide both per call (bindings.arrays.launch_settings:
# the caller's current torch / CuPy stream and that library's caching pool) and set them for
# the call with launch_context(); kernels stay policy-free and only read them. Default:
# numba's own allocator on stream 0 (the legacy default stream).
_LAUNCH = contextvars.ContextVar("cs_fast_cuda_launch", default=(0, None))


@contextlib.contextmanager
def launch_context(stream=0, allocate=None):
    """Queue every launch, copy and allocation of the CUDA wing on ``stream`` inside the block.

    ``allocate(shape, dtype)`` returns an empty device array (a pool's); None
    is numba's ``device_array``. Nested contexts restore the outer one on exit.
    """
    token = _LAUNCH.set((stream, allocate))
    try:
        yield
    finally:
        _LAUNCH.reset(token)


def current_stream():
    """The stream launches go to (0: numba's default stream)."""
    return _LAUNCH.get()[0]


def launch(kernel, grid, block):
    """``kernel[grid, block]`` configured for the current stream."""
    return kernel[grid, block, _LAUNCH.get()[0]]


def empty(shape, dtype):
    """An uninitialised device array from the current allocator, bound to the current stream."""
    stream, allocate = _LAUNCH.get()
    shape = tuple(int(s) for s in shape) if isinstance(shape, tuple) else (int(shape),)
    if allocate is not None and int(np.prod(shape)) > 0:
        return allocate(shape, np.dtype(dtype))
    return cuda_module().device_array(shape, dtype=np.dtype(dtype), stream=stream)


def upload(host):
    """A device copy of a host array, queued on the current stream (pageable source: staged at once)."""
    host = np.ascontiguousarray(host)
    out = empty(host.shape, host.dtype)
    if host.size:
        out.copy_to_device(host, stream=current_stream())
    return out


def fetch(arr):
    """The host copy of a device array, after everything queued before it on the current stream."""
    stream = current_stream()
    host = arr.copy_to_host(stream=stream)
    if stream != 0:
        stream.synchronize()
    return host
