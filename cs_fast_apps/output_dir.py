"""Default output folders of the commands: a fresh, timestamped folder in the working directory.

``cs-fast bench``, ``demo``, ``faces``, ``perceptual`` and ``audit`` write by
default into ``./cs_fast_<command>_YYYYmmdd-HHMMSS/``, never into an existing
folder, so that a run never overwrites earlier results (committed ones
included); committed results change only with an explicit ``--out``. The
repository's ``.gitignore`` ignores these folders.
"""

import os
import time

# Shell-style pattern of the default folders (the .gitignore and the tests use it).
PATTERN = "cs_fast_*_[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9][0-9][0-9]*"


def fresh_output_dir(command, now=None):
    """A folder name that does not exist yet: ``cs_fast_<command>_YYYYmmdd-HHMMSS`` in the working directory.

    Parameters
    ----------
    command : str
        The command's name (``'bench'``, ``'demo'``, ...).
    now : float, optional
        Seconds since the epoch (default: the current time), in local time.

    Returns
    -------
    str
        A relative path; ``-2``, ``-3``, ... is appended when a run in the same
        second already took the name. Nothing is created.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = f"cs_fast_{command}_{stamp}"
    path, k = base, 1
    while os.path.exists(path):
        k += 1
        path = f"{base}-{k}"
    return path
