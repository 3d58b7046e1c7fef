"""Timing, peak-memory probes and the machine's ceilings, for the benchmark report.

Peak memory is the process's resident set size (RSS), which sees numba's,
torch's and BLAS's allocations alike (``tracemalloc`` only sees Python's).
On Linux the probe is exact per call: free heap pages are returned to the OS
(``gc.collect`` + glibc ``malloc_trim``), the kernel's high-water mark is
reset (``/proc/self/clear_refs`` = 5), and the delta is ``VmHWM`` after the
call minus ``VmRSS`` before it. Elsewhere it falls back to the growth of
``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which only sees growth above
the process's earlier peak (a lower bound); :data:`MEMORY_METHOD` says which.
"""

import ctypes
import ctypes.util
import gc
import os
import statistics
import sys
import time

import numpy as np

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def _status_kib(field):
    with open(_STATUS) as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _can_reset_peak():
    try:
        with open(_CLEAR_REFS, "w") as fh:
            fh.write("5")
        _status_kib("VmHWM")
        return True
    except OSError:
        return False
    except KeyError:
        return False


def _load_trim():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


_RESET = sys.platform.startswith("linux") and _can_reset_peak()
_TRIM = _load_trim()

MEMORY_METHOD = (
    "RSS peak delta of one untimed probe call, separate from the timed calls: gc + malloc_trim, "
    "reset VmHWM via /proc/self/clear_refs, then VmHWM after the call minus VmRSS before it "
    "(includes the returned result)"
    if _RESET
    else "ru_maxrss growth during one untimed probe call (getrusage; a lower bound: growth above the "
         "earlier peak only)"
)


def _maxrss_bytes():
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class PeakRSS:
    """Context manager measuring the peak RSS growth of the process in its body.

    Attributes
    ----------
    delta : int
        Bytes: the peak resident set size during the body minus the resident
        size at entry (see :data:`MEMORY_METHOD` for the fallback).
    """

    def __enter__(self):
        gc.collect()
        if _TRIM is not None:
            _TRIM(0)
        if _RESET:
            self._base = _status_kib("VmRSS") * 1024
            with open(_CLEAR_REFS, "w") as fh:
                fh.write("5")
        else:
            self._base = _maxrss_bytes()
        self.delta = 0
        return self

    def __exit__(self, *exc):
        peak = _status_kib("VmHWM") * 1024 if _RESET else _maxrss_bytes()
        self.delta = max(0, peak - self._base)
        return False


def time_call(fn, args, *, min_time=0.5, max_reps=5, probe_memory=True):
    """Time ``fn(*args)`` and, in a separate call, probe its peak memory.

    The caller warms ``fn`` up first (JIT compilation is not timed here).
    The memory probe is its own call, before the timed ones and outside
    them: it starts right after ``gc`` and ``malloc_trim``, so it pays fresh
    page faults that no timed call should include. The timed calls then
    repeat until ``min_time`` seconds or ``max_reps`` calls (at least one).

    Returns
    -------
    dict
        ``times`` (list of seconds), ``median``, ``min`` (the least disturbed
        call on a shared machine: what the report ranks by), ``peak_rss_delta``
        (bytes, None without a probe) and ``result`` (the last return value).
    """
    peak = None
    if probe_memory:
        with PeakRSS() as probe:
            fn(*args)  # the result is part of the peak (and dropped before the timed calls)
        peak = probe.delta
    times = []
    result = None
    while not times or (sum(times) < min_time and len(times) < max_reps):
        result = None  # free the previous result before the next call allocates its own
        t0 = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - t0)
    return {"times": times, "median": statistics.median(times), "min": min(times),
            "peak_rss_delta": peak, "result": result}


def _best_time(fn, reps):
    fn()
    return min(_timed(fn) for _ in range(reps))


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def ceilings(gemm_n=2048, copy_mib=256, reps=5):
    """The machine's measured ceilings: float32 GEMM FLOP/s and copy bandwidth.

    GEMM: best of ``reps`` ``gemm_n x gemm_n`` float32 products with numpy's
    BLAS and with ``torch.mm`` (:func:`threads` threads), ``2 n**3`` FLOP each; the
    larger counts. Bandwidth: best of ``reps`` copies of a ``copy_mib`` MiB
    float32 array (keep it well above the last-level cache) with numpy and
    with torch, counting bytes read plus bytes written.

    Returns
    -------
    dict
        ``sgemm_flops``, ``copy_bytes_per_s`` and the per-library figures.
    """
    import torch

    torch.set_num_threads(threads())
    n = gemm_n
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n), dtype=np.float32)
    B = rng.standard_normal((n, n), dtype=np.float32)
    flop = 2.0 * n**3
    np_gemm = flop / _best_time(lambda: A @ B, reps)
    tA, tB = torch.from_numpy(A), torch.from_numpy(B)
    torch_gemm = flop / _best_time(lambda: torch.mm(tA, tB), reps)
    del A, B, tA, tB

    src = np.ones(copy_mib * 2**20 // 4, dtype=np.float32)
    dst = np.empty_like(src)
    moved = 2.0 * src.nbytes
    np_copy = moved / _best_time(lambda: np.copyto(dst, src), reps)
    ts, td = torch.from_numpy(src), torch.from_numpy(dst)
    torch_copy = moved / _best_time(lambda: td.copy_(ts), reps)
    return {
        "sgemm_flops": max(np_gemm, torch_gemm),
        "copy_bytes_per_s": max(np_copy, torch_copy),
        "sgemm_numpy_flops": np_gemm,
        "sgemm_torch_flops": torch_gemm,
        "sgemm_n": n,
        "copy_numpy_bytes_per_s": np_copy,
        "copy_torch_bytes_per_s": torch_copy,
        "copy_array_bytes": int(src.nbytes),
    }


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine():
    """Host name, CPU model, core count and library versions."""
    import platform
    import socket

    import numba
    import scipy
    import torch

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import sklearn

        skl = sklearn.__version__
    except ImportError:
        skl = None
    return {
        "hostname": socket.gethostname(), "cpu": cpu, "cores": _cores(),
        "total_memory_bytes": _total_memory(), "python": platform.python_version(),
        "numpy": np.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "sklearn": skl,
        "blas_threads": blas_threads(),
    }


def load_average():
    """The 1-minute load average (None where the OS does not report one)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def load_averages():
    """The 1-, 5- and 15-minute load averages as a list (None where the OS does not report them)."""
    try:
        return [float(x) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


# threadpoolctl's limiter, kept alive while a thread count is set (None: the libraries' defaults).
_BLAS_LIMIT = None


def threads():
    """Threads every implementation of a run uses: numba's current count.

    :func:`set_threads` sets numba, torch and BLAS to one count together;
    the torch peers and the ceilings read it here, so cs_fast and its peers
    always run with the same number of threads.
    """
    import numba

    return numba.get_num_threads()


def free_cores(load=None):
    """Cores not busy with other work: the core count minus the 1-minute load average, at least 1.

    Measured before a run starts, the load average counts other processes
    (this one is idle while it imports), so this is the thread count that
    does not contend with them.
    """
    load = load_average() if load is None else load
    if load is None:
        return _cores()
    return max(1, min(_cores(), int(_cores() - load + 0.5)))


def set_threads(n):
    """Run numba, torch and BLAS (through threadpoolctl when installed) on ``n`` threads.

    ``n`` may be ``'auto'``: :func:`free_cores`. Returns the count set.
    """
    global _BLAS_LIMIT
    import numba
    import torch

    if n == "auto":
        n = free_cores()
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"threads: expected an integer in 1..{numba.config.NUMBA_NUM_THREADS} "
                         f"(numba's NUMBA_NUM_THREADS) or 'auto', received {n!r}")
    numba.set_num_threads(n)
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        _BLAS_LIMIT = None
    else:
        if _BLAS_LIMIT is not None:
            _BLAS_LIMIT.restore_original_limits()
        _BLAS_LIMIT = threadpool_limits(limits=n)
    return n


def blas_threads():
    """``[{library, api, threads}]`` of the loaded BLAS/OpenMP pools (threadpoolctl), or None without it."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [{"library": i.get("prefix"), "api": i.get("internal_api"), "threads": i.get("num_threads")}
            for i in threadpool_info()]


def load_status(threads_used=None):
    """The machine's load before a run and whether it is too busy for clean timings.

    Returns
    -------
    dict
        ``load_average`` (1, 5, 15 minutes), ``cores``, ``threads`` (the run's),
        ``free_cores`` (:func:`free_cores`), ``busy`` (the 1-minute load average
        is above the cores the run's threads leave free: other processes then
        take cores the run needs, and numba's parallel regions stall on the
        slowest thread) and ``warning`` (a sentence when busy, else None).
    """
    loads = load_averages()
    used = threads() if threads_used is None else threads_used
    cores = _cores()
    status = {"load_average": loads, "cores": cores, "threads": used, "free_cores": None, "busy": None,
              "warning": None}
    if loads is None:
        return status
    status["free_cores"] = free_cores(loads[0])
    # Other processes keep about `load` cores busy; the run can only have `cores - used` of them.
    status["busy"] = loads[0] > cores - used + 0.5
    if status["busy"]:
        status["warning"] = (f"the machine is busy: load average {loads[0]:.2f} on {cores} cores while this run "
                             f"uses {used} threads (free cores about {status['free_cores']}); timings are "
                             f"contended and numba's parallel regions may stall. Rerun on an idle machine or "
                             f"with --threads {status['free_cores']}.")
    return status


def _total_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory():
    """Bytes the kernel reports available (MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _total_memory()
