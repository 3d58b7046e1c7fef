"""Device-kernel tests: run under the CUDA simulator or on a real GPU, else skip.

``NUMBA_ENABLE_CUDASIM=1`` must be set before numba is imported, so the normal
test run cannot switch the simulator on for itself: ``tests/test_cuda_simulator.py``
runs this folder in a subprocess with the variable set.
"""

import os
import pathlib
import sys
import threading

import pytest

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _skip_reason():
    try:
        from numba import cuda
    except ImportError:
        return "numba-cuda is not installed (pip install numba-cuda)"
    if SIMULATED:
        return None
    if cuda.is_available():
        return None
    return (
        "no GPU and NUMBA_ENABLE_CUDASIM is not 1; tests/test_cuda_simulator.py runs these "
        "under the simulator in a subprocess"
    )


SKIP_REASON = _skip_reason()



def _lock_simulated_shared_arrays():
    """Make the simulator's ``cuda.shared.array`` thread-safe.

    numba-cuda's simulator (0.30) finds a block's shared array by the calling
    line with an unlocked get-then-set, so two threads can each create their
    own "shared" array and never see each other's writes; our radix select
    then intermittently returned a value that is not in the row. Same
    semantics, with the lookup under a lock.
    """
    import numpy as np
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    original = kernelapi.FakeCUDAShared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if alignment is not None or shape == 0:
            return original(self, shape, dtype, alignment)  # not keyed by call site
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            found = self._allocations.get(caller)
            if found is None:
                found = self._allocations[caller] = np.empty(shape, dtype)
        return found

    kernelapi.FakeCUDAShared.array = array


if SIMULATED and SKIP_REASON is None:
    _lock_simulated_shared_arrays()
    # The simulator runs a Python thread per CUDA thread and polls them at every
    # syncthreads; a short GIL switch interval makes those rounds ~20x faster.
    sys.setswitchinterval(1e-5)


def pytest_report_header(config):
    where = "CUDA simulator" if SIMULATED else "GPU"
    return f"cuda_sim: {'skipped: ' + SKIP_REASON if SKIP_REASON else 'running on the ' + where}"


def pytest_collection_modifyitems(config, items):
    if SKIP_REASON is None:
        return
    here = pathlib.Path(__file__).parent
    marker = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if here in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(marker)


# Long parametrized grids: every combination runs in the full suite (-m "slow or not slow", the
# README's command), the default run keeps every k-th so that it still reaches each kernel with
# several metrics, dtypes and sizes in a fraction of the time.
THINNED = {
    "test_pruned_equals_device_brute_force": 4,
    "test_every_entry_point_on_numba_device_arrays_equals_the_cpu_path": 3,
    "test_min_median_is_exact_on_device_distances": 4,
    "test_fused_is_unfused_and_brute_force_bit_for_bit": 2,
    "test_device_min_median_is_brute_force_bit_for_bit": 2,
    "test_interface_only_objects_work_and_come_back_as_device_arrays": 3,
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by the markers added here
def pytest_collection_modifyitems(config, items):
    seen = {}
    for item in items:
        every = THINNED.get(getattr(item, "originalname", item.name))
        if every:
            index = seen.setdefault(item.originalname, 0)
            seen[item.originalname] = index + 1
            if index % every:
                item.add_marker(pytest.mark.slow)
