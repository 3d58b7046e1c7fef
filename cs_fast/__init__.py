"""cs_fast: fast, certified center smoothing.

Public API:

- distances: :func:`cdist`, :func:`pdist`, :func:`paired`, :func:`to_center`, :func:`min_median`
- metrics: :func:`available_metrics`, :func:`get_metric`
- smoothing: :class:`CenterSmoothing`, :class:`SmoothResult`, :class:`Certificate`
- statistics: :mod:`cs_fast.bounds`
- compiling ahead of time: :func:`warmup`
"""

from . import bounds
from .bindings.distance import cdist, min_median, paired, pdist, to_center
from .metrics import available_metrics, get_metric
from .smoothing import Certificate, CenterSmoothing, SmoothResult
from .warmup import warmup

__version__ = "0.1.0"

__all__ = [
    "Certificate",
    "CenterSmoothing",
    "SmoothResult",
    "available_metrics",
    "bounds",
    "cdist",
    "get_metric",
    "min_median",
    "paired",
    "pdist",
    "to_center",
    "warmup",
]
