"""Benchmark workloads: data that looks like center-smoothing samples, sizes, cost model.

Samples are a base output plus noise (what a model gives under Gaussian input
noise), so medians and cs_fast's pruning behave as they do in use, unlike
uniform random data.

The cost model counts *element ops*: pairs times the features compared per
pair (box coordinates, mask pixels, TV finite differences, feature
dimensions). ``flops_per_elem`` turns them into an estimate of arithmetic
(3 for L1: subtract, abs, add; 2 for the GEMM multiply-add; ~4 for IoU;
4 word ops per 64 mask pixels), compared with the measured float32 GEMM
ceiling; compulsory bytes (inputs once, outputs once) are compared with the
measured copy bandwidth. Both are rough rooflines, not exact counts.
"""

from dataclasses import dataclass, field

import numpy as np

OPS = ("pairwise", "to_center", "min_median")


@dataclass(frozen=True)
class Workload:
    """One benchmark input family.

    Attributes
    ----------
    key : str
        Label (``'boxes'``, ``'tv1x28x28'``, ...).
    metric : str
        cs_fast metric name.
    shape : tuple
        Per-sample shape.
    elems : int
        Features compared per pair (for element ops).
    flops_per_elem : float
        Arithmetic per element op (see the module docstring).
    sizes, quick_sizes : dict
        ``op -> tuple of n`` for the full and the ``--quick`` run.
    """

    key: str
    metric: str
    shape: tuple
    elems: int
    flops_per_elem: float
    sizes: dict = field(repr=False)
    quick_sizes: dict = field(repr=False)

    def make(self, n, seed=0):
        """``n`` samples for this workload, deterministic in ``seed``."""
        rng = np.random.default_rng([seed, n])
        return _MAKERS[self.metric](rng, n, self.shape)

    def sample_bytes(self):
        """Bytes of one input sample."""
        return int(np.prod(self.shape)) * (1 if self.metric == "jaccard_mask" else 4)


def _boxes(rng, n, shape):
    base = np.array([30.0, 40.0, 80.0, 120.0])
    return (base + rng.normal(0.0, 6.0, size=(n, 4))).astype(np.float32)


def _masks(rng, n, shape):
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    centre = np.array([h / 2, w / 2]) + rng.normal(0.0, 1.5, size=(n, 2))
    out = np.empty((n, h, w), dtype=bool)
    for i0 in range(0, n, 4096):
        c = centre[i0:i0 + 4096]
        dist = np.hypot(yy[None] - c[:, 0, None, None], xx[None] - c[:, 1, None, None])
        prob = 1.0 / (1.0 + np.exp((dist - 0.3 * min(h, w)) / 1.5))
        out[i0:i0 + 4096] = rng.random(dist.shape) < prob
    return out


def _images(rng, n, shape):
    grid = np.meshgrid(*[np.linspace(0, 3, s) for s in shape[-2:]], indexing="ij")
    base = (0.5 + 0.4 * np.sin(grid[0] * 2.0) * np.cos(grid[1] * 3.0)).astype(np.float32)
    base = np.broadcast_to(base, shape)
    out = np.empty((n,) + tuple(shape), dtype=np.float32)
    for i0 in range(0, n, 4096):
        i1 = min(n, i0 + 4096)
        out[i0:i1] = base + 0.1 * rng.standard_normal((i1 - i0,) + tuple(shape), dtype=np.float32)
    return out


def _features(rng, n, shape):
    base = rng.standard_normal(shape, dtype=np.float32)
    out = np.empty((n,) + tuple(shape), dtype=np.float32)
    for i0 in range(0, n, 4096):
        i1 = min(n, i0 + 4096)
        out[i0:i1] = base + 0.3 * rng.standard_normal((i1 - i0,) + tuple(shape), dtype=np.float32)
    return out


_MAKERS = {"jaccard": _boxes, "jaccard_mask": _masks, "tv": _images, "sqfeat": _features}


def _tv_elems(c, h, w):
    return c * ((h - 1) * w + h * (w - 1))


_K = 1000


def default_workloads():
    """The report's workloads: boxes, 28x28 masks, tv 1x28x28 and 3x32x32, sqfeat d=4096."""
    return [
        Workload(
            "boxes", "jaccard", (4,), 4, 4.0,
            sizes={"pairwise": (1 * _K, 3 * _K, 10 * _K, 30 * _K),
                   "to_center": (1 * _K, 10 * _K, 100 * _K, 1000 * _K),
                   "min_median": (1 * _K, 3 * _K, 10 * _K, 30 * _K, 100 * _K)},
            quick_sizes={"pairwise": (1 * _K, 2 * _K), "to_center": (1 * _K, 10 * _K),
                         "min_median": (1 * _K, 2 * _K, 4 * _K)},
        ),
        Workload(
            "masks28x28", "jaccard_mask", (28, 28), 28 * 28, 4.0 / 64,
            sizes={"pairwise": (1 * _K, 3 * _K, 10 * _K),
                   "to_center": (1 * _K, 10 * _K, 100 * _K),
                   "min_median": (1 * _K, 3 * _K, 10 * _K, 30 * _K)},
            quick_sizes={"pairwise": (1 * _K, 2 * _K), "to_center": (1 * _K, 10 * _K),
                         "min_median": (1 * _K, 2 * _K)},
        ),
        Workload(
            "tv1x28x28", "tv", (1, 28, 28), _tv_elems(1, 28, 28), 3.0,
            sizes={"pairwise": (1 * _K, 3 * _K, 10 * _K),
                   "to_center": (1 * _K, 10 * _K, 100 * _K),
                   "min_median": (1 * _K, 3 * _K, 10 * _K)},
            quick_sizes={"pairwise": (500, 1 * _K), "to_center": (1 * _K, 10 * _K),
                         "min_median": (500, 1 * _K)},
        ),
        Workload(
            "tv3x32x32", "tv", (3, 32, 32), _tv_elems(3, 32, 32), 3.0,
            sizes={"pairwise": (1 * _K, 3 * _K, 10 * _K),
                   "to_center": (1 * _K, 10 * _K, 100 * _K),
                   "min_median": (1 * _K, 3 * _K, 10 * _K)},
            quick_sizes={"pairwise": (250, 500), "to_center": (1 * _K, 5 * _K),
                         "min_median": (250, 500)},
        ),
        Workload(
            "sqfeat4096", "sqfeat", (4096,), 4096, 2.0,
            sizes={"pairwise": (1 * _K, 3 * _K, 10 * _K),
                   "to_center": (1 * _K, 10 * _K, 50 * _K),
                   "min_median": (1 * _K, 4 * _K, 10 * _K)},
            quick_sizes={"pairwise": (500, 1 * _K), "to_center": (1 * _K, 10 * _K),
                         "min_median": (500, 1 * _K)},
        ),
    ]


def pairs(op, n):
    """Distance pairs one call of ``op`` evaluates at size ``n`` (nominal: no pruning)."""
    return n if op == "to_center" else n * n


def compulsory_bytes(workload, op, n):
    """Bytes an ideal implementation must move: the inputs once and the outputs once."""
    inputs = n * workload.sample_bytes()
    outputs = {"pairwise": 4 * n * n, "to_center": 4 * n, "min_median": 16}[op]
    return inputs + outputs


def time_order(op):
    """Exponent of the time's growth in ``n`` (used to predict and skip)."""
    return 1 if op == "to_center" else 2
