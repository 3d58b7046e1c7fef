"""The (h, eps1) sweep behind ``cs-fast faces`` and ``cs-fast perceptual``, and the sweeps' seeds.

Every setting of a sweep draws its noise from its own seed,
``SeedSequence(root, spawn_key=(input, h index, eps1 index))``, so no two
settings share noise; the root is ``--seed`` or, by default, fresh OS
entropy, and both are recorded with every row (``seed``, ``spawn_key``) so
that the sweep, or one row, can be reproduced. ``--same-seed`` gives every
setting the root seed itself instead (the behaviour before the per-setting
seeds).
"""

import json
import os

import numpy as np

from cs_fast.bounds import ALPHA_DEFAULT, DELTA_DEFAULT
from cs_fast.seeds import root_seed  # noqa: F401  (used by the sweeps below and re-exported)

#: The scalar fields of a :class:`cs_fast.Certificate` that the sweeps report.
CERTIFICATE_FIELDS = ("eps_out", "R", "smoothing_error", "radius", "abstained", "reason", "bounds", "count",
                      "threshold", "delta1", "delta2", "p", "q", "rank", "level", "vacuous", "failure_probability",
                      "seed", "spawn_key")


def certificate_fields(cert, keys=CERTIFICATE_FIELDS):
    """``{key: cert.key}`` for scalar fields of a certificate (JSON-ready; the spawn key as a list)."""
    return {key: list(v) if isinstance(v, tuple) else v for key in keys for v in [getattr(cert, key)]}


def setting_seed(root, key, same_seed=False):
    """The seed of one setting of a sweep: ``SeedSequence(root, spawn_key=key)``, or ``root`` with ``same_seed``.

    Parameters
    ----------
    root : int
        From :func:`root_seed`.
    key : tuple of int
        The setting's indices, e.g. ``(input, h index, eps1 index)``.
    same_seed : bool
        Every setting gets ``root`` itself.
    """
    return root if same_seed else np.random.SeedSequence(root, spawn_key=tuple(int(k) for k in key))


def add_bounds_argument(parser):
    """``--bounds {exact,paper}``: the statistics of the certificates (every certifying subcommand has it)."""
    parser.add_argument("--bounds", choices=("exact", "paper"), default="exact",
                        help="statistics of the certificate: exact binomial bounds, or the paper's Hoeffding and "
                             "DKW bounds (same failure probability; exact certifies from fewer samples; "
                             "default: %(default)s)")


def add_statistics_arguments(parser, delta=DELTA_DEFAULT):
    """``--delta``, ``--alpha1``, ``--alpha2`` and ``--bounds`` of a sweep."""
    parser.add_argument("--delta", type=float, default=delta,
                        help="abstain unless the center check's margin is at most this (default: %(default)s)")
    parser.add_argument("--alpha1", type=float, default=ALPHA_DEFAULT,
                        help="failure probability of the center check (default: %(default)s)")
    parser.add_argument("--alpha2", type=float, default=ALPHA_DEFAULT,
                        help="failure probability of the radius bound (default: %(default)s)")
    add_bounds_argument(parser)


def statistics(args):
    """The certify keywords of :func:`add_statistics_arguments`' options."""
    return dict(delta=args.delta, alpha1=args.alpha1, alpha2=args.alpha2, bounds=args.bounds)


def refuse_uncertifiable_sweep(args):
    """Raise, before any model call, if ``args.n``/``args.m`` cannot certify some (h, eps1) of the sweep."""
    from cs_fast.bounds import require_certifiable

    for h in args.h:
        for eps1 in args.eps1:
            try:
                require_certifiable(args.n, args.m, eps1, eps1 / h, args.delta, args.alpha1, args.alpha2, args.bounds)
            except ValueError as err:
                raise ValueError(f"--{err} (at --h {h:g}, --eps1 {eps1:g})") from None


def add_seed_arguments(parser, rule="each (input, h, eps1) draws from its own seed derived from it"):
    """``--seed`` and ``--same-seed`` of the sweeps; ``rule`` says how the settings' seeds derive from the root."""
    parser.add_argument("--seed", type=int, default=None,
                        help=f"root seed of the run (default: fresh OS entropy, recorded); {rule}")
    parser.add_argument("--same-seed", action="store_true",
                        help="use the root seed itself everywhere (the same noise across settings and inputs)")


def sweep(out, hs, eps1s, certify_one, report=None, seed=None, same_seed=False, input_index=0):
    """Run ``certify_one(h, eps1, seed) -> row`` for every h, then every eps1.

    Each row is printed as a JSON line, and ``out/certificates.json`` is
    rewritten after every row, so a long sweep stopped midway keeps what it
    finished.

    Parameters
    ----------
    out : str or path-like
        Folder (created if missing); ``certify_one`` may write pictures there.
    hs, eps1s : sequences of float
    certify_one : callable
        ``(h, eps1, seed) -> dict``, JSON-ready; ``seed`` is the setting's
        (:func:`setting_seed`), to pass to :class:`cs_fast.CenterSmoothing`.
    report : dict, optional
        Written whole, with the rows appended to ``report["rows"]``;
        otherwise the list of rows is written.
    seed : int, optional
        The root seed; None draws fresh entropy. Each row records it as
        ``root_seed``.
    same_seed : bool
        See :func:`setting_seed`.
    input_index : int
        The input's index, first in every setting's spawn key.

    Returns
    -------
    list or dict
        The rows, or ``report``.
    """
    root = root_seed(seed)
    os.makedirs(out, exist_ok=True)
    rows = [] if report is None else report["rows"]
    for hi, h in enumerate(hs):
        for ei, eps1 in enumerate(eps1s):
            row = {**certify_one(h, eps1, setting_seed(root, (input_index, hi, ei), same_seed)), "root_seed": root}
            rows.append(row)
            print(json.dumps(row), flush=True)
            with open(os.path.join(out, "certificates.json"), "w") as f:
                json.dump(rows if report is None else report, f, indent=1)
    return rows if report is None else report
