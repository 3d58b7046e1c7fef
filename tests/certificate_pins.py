"""Pinned certificates: fixed seeds, models and settings whose certificates must not change.

``tests/data/certificate_pins.json`` holds the ``to_dict()`` of every case below,
made before the exact bounds existed, so with the paper's Hoeffding/DKW
statistics (first at commit 4b1cecb; regenerated once when the distances became
exact to their inputs, which moved 12 of the 27 records in their last bits). ``tests/test_certificate_pins.py``
recomputes each case with ``bounds="paper"`` and requires every pinned field to
be the same bits. Regenerate (only when a change is meant to alter them, and
say why in the commit)::

    python tests/certificate_pins.py
"""

import json
import os

import numpy as np
import torch

PATH = os.path.join(os.path.dirname(__file__), "data", "certificate_pins.json")

W = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, -1.0], [2.0, 0.0, 1.0], [0.3, 0.3, 0.3], [0.0, -0.7, 0.4]])
WEIGHTS = np.array([0.5, 1.0, 2.0, 0.25, 1.5])


def linear(x):
    """numpy (b, 3) -> (b, 5)."""
    return x @ W.T


def linear32(x):
    """numpy float32 in and out."""
    return (x @ W.T.astype(np.float32)).astype(np.float32)


def boxes(x):
    """numpy (b, 3) -> (b, 4) boxes."""
    return np.stack([x[:, 0], x[:, 1], x[:, 0] + 2.0 + 0.3 * x[:, 2], x[:, 1] + 1.5 - 0.2 * x[:, 2]], axis=1)


def torch_boxes(x):
    """torch (b, 2) -> (b, 4): a 2x2 box centred at the input."""
    return torch.cat([x - 1.0, x + 1.0], dim=1)


def image(x):
    """numpy (b, 6) -> (b, 2, 3, 4) images."""
    b = x.shape[0]
    grid = np.linspace(0.0, 1.0, 12).reshape(3, 4)
    one = grid[None] * x[:, :1, None] + np.tanh(x[:, 4:5, None]) * grid[None, ::-1]
    two = np.outer(x[:, 1:4].sum(axis=1), np.ones(12)).reshape(b, 3, 4) * 0.1 + x[:, 5:6, None] * grid[None]
    return np.stack([one, two], axis=1)


def two_valued(x):
    """Half of the noise maps to one box, half to a far one (the lower median radius is 0 or 1)."""
    a = np.array([0.0, 0.0, 1.0, 1.0])
    b = np.array([5.0, 5.0, 6.0, 6.0])
    return np.where(x[:, :1] > 0, a, b)


X3 = np.array([0.3, -0.2, 0.1])
X6 = np.array([0.8, 0.1, -0.3, 0.2, 0.5, -0.1])

#: name: (model, metric, smoother options, x, certify arguments)
CASES = {
    "jaccard": (boxes, "jaccard", dict(sigma=0.05), X3, dict(eps1=0.03, n=2000, m=20_000)),
    "l2": (linear, "l2", dict(sigma=0.1), X3, dict(eps1=0.05, n=1500, m=10_000, delta=0.1)),
    "l2-float32": (linear32, "l2", dict(sigma=0.1), X3.astype(np.float32), dict(eps1=0.1, n=1500, m=5000)),
    "tv-channels": (image, "tv", dict(sigma=0.1, metric_params={"channel_norm": 2}), X6,
                    dict(eps1=0.1, n=1500, m=8000)),
    "tv": (image, "tv", dict(sigma=0.1), X6, dict(eps1=0.15, n=1300, m=12_000, alpha1=0.01, alpha2=0.001)),
    "sqfeat-weights": (linear, "sqfeat", dict(sigma=0.1, metric_params={"weights": WEIGHTS}), X3,
                       dict(eps1=0.05, n=1500, m=10_000)),
    "smooth-hd": (linear, "l1", dict(sigma=0.1, candidates=30), X3, dict(eps1=0.1, n=1500, m=10_000)),
    "torch-boxes": (torch_boxes, "jaccard", dict(sigma=0.25, batch_size=700), torch.tensor([0.3, -0.2]),
                    dict(eps1=0.25, n=2000, m=20_000)),
    "two-valued": (two_valued, "jaccard", dict(sigma=0.5), np.array([0.0]), dict(eps1=0.1, n=2000, m=20_000)),
}

SEEDS = (0, 20261206)


def certificate(name, seed, **smoother_extra):
    import cs_fast

    model, metric, options, x, args = CASES[name]
    smoother = cs_fast.CenterSmoothing(model, metric, seed=seed, **options, **smoother_extra)
    return smoother.certify(x, **args)


def smooth_result(name, seed, **smoother_extra):
    import cs_fast

    model, metric, options, x, args = CASES[name]
    smoother = cs_fast.CenterSmoothing(model, metric, seed=seed, **options, **smoother_extra)
    keep = {k: v for k, v in args.items() if k in ("n", "alpha1", "delta")}
    return smoother.smooth(x, **keep)


def main():
    pins = {}
    for name in CASES:
        for seed in SEEDS:
            pins[f"certify/{name}/{seed}"] = certificate(name, seed).to_dict()
        pins[f"smooth/{name}/{SEEDS[0]}"] = smooth_result(name, SEEDS[0]).to_dict()
    os.makedirs(os.path.dirname(PATH), exist_ok=True)
    with open(PATH, "w") as f:
        json.dump(pins, f, indent=1, sort_keys=True)
    print(f"wrote {len(pins)} pins to {PATH}")


if __name__ == "__main__":
    main()
