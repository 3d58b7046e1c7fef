"""The (h, eps1) sweep behind ``cs-fast faces`` and ``cs-fast perceptual``."""

import json
import os

#: The scalar fields of a :class:`cs_fast.Certificate` that the sweeps report.
CERTIFICATE_FIELDS = ("eps_out", "R", "smoothing_error", "radius", "abstained", "reason", "delta2", "p", "q")


def certificate_fields(cert, keys=CERTIFICATE_FIELDS):
    """``{key: cert.key}`` for scalar fields of a certificate (JSON-ready as they are)."""
    return {key: getattr(cert, key) for key in keys}


def sweep(out, hs, eps1s, certify_one, report=None):
    """Run ``certify_one(h, eps1) -> row`` for every h, then every eps1.

    Each row is printed as a JSON line, and ``out/certificates.json`` is
    rewritten after every row, so a long sweep stopped midway keeps what it
    finished.

    Parameters
    ----------
    out : str or path-like
        Folder (created if missing); ``certify_one`` may write pictures there.
    hs, eps1s : sequences of float
    certify_one : callable
        ``(h, eps1) -> dict``, JSON-ready.
    report : dict, optional
        Written whole, with the rows appended to ``report["rows"]``;
        otherwise the list of rows is written.

    Returns
    -------
    list or dict
        The rows, or ``report``.
    """
    os.makedirs(out, exist_ok=True)
    rows = [] if report is None else report["rows"]
    for h in hs:
        for eps1 in eps1s:
            row = certify_one(h, eps1)
            rows.append(row)
            print(json.dumps(row), flush=True)
            with open(os.path.join(out, "certificates.json"), "w") as f:
                json.dump(rows if report is None else report, f, indent=1)
    return rows if report is None else report
