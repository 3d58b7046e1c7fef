"""Compile cs_fast's CPU kernels ahead of the first real call.

The first call of a metric compiles its numba kernels for this machine: tens
of seconds for all of them, once; later processes load them from numba's
on-disk cache in milliseconds (:mod:`cs_fast.kernels.cpu.runtime`). cs_fast says so the
first time it compiles (a warning of the ``cs_fast`` logger); :func:`warmup`
does the compiling up front, e.g. at the start of a service or a notebook.
"""

import time

import numpy as np

from .bindings.distance import cdist, min_median, paired, pdist, to_center
from .metrics import available_metrics, get_metric

_DTYPES = ("float64", "float32")


def _samples(metric, dtype, n=8):
    """A few samples in the metric's layout (boxes, masks, images, vectors)."""
    rng = np.random.default_rng(0)
    if metric == "jaccard":
        xy = rng.uniform(0, 4, (n, 2))
        return np.concatenate([xy, xy + rng.uniform(0.5, 2, (n, 2))], axis=1).astype(dtype)
    if metric == "jaccard_mask":
        return rng.random((n, 3, 5)) < 0.5
    if metric == "tv":
        return rng.random((n, 2, 3, 4)).astype(dtype)
    return (rng.random((n, 6)) + 0.5).astype(dtype)


def warmup(metrics=None, dtypes=_DTYPES):
    """Compile the CPU kernels of ``metrics`` for ``dtypes`` now; return the seconds it took per metric.

    Runs :func:`cdist`, :func:`pdist`, :func:`paired`, :func:`to_center` and
    both :func:`min_median` methods on a few samples of each metric (masks
    have no dtype: once). With numba's cache on disk the second process pays
    milliseconds.

    Parameters
    ----------
    metrics : sequence of str, optional
        Metric names or aliases; default every registered metric.
    dtypes : sequence of {'float64', 'float32'}
        The input dtypes to compile for.

    Returns
    -------
    dict
        ``{metric name: seconds}``.

    Examples
    --------
    >>> import cs_fast
    >>> seconds = cs_fast.warmup(["l2"], dtypes=["float64"])
    >>> sorted(seconds)
    ['l2']
    """
    names = available_metrics() if metrics is None else [get_metric(m).name for m in metrics]
    for d in dtypes:
        if np.dtype(d) not in (np.float32, np.float64):
            raise ValueError(f"dtypes: received {d!r}; expected 'float64' or 'float32'")
    spent = {}
    for name in names:
        start = time.perf_counter()
        for d in (_DTYPES[:1] if name == "jaccard_mask" else dtypes):
            Z = _samples(name, d)
            cdist(Z, Z[:3], name)
            pdist(Z, name)
            paired(Z, Z[::-1], name)
            to_center(Z, Z[0], name)
            for method in ("brute", "pruned"):
                min_median(Z, name, method=method)
        spent[name] = time.perf_counter() - start
    return spent
