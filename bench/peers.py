"""Peer implementations for the benchmarks (scipy, torch, scikit-learn, numpy, the authors' loop).

The code lives in :mod:`cs_fast_apps.bench.peers` so that the installed
``cs-fast bench`` command has it too; this module re-exports it for scripts
and notebooks run from the repository's ``bench/`` folder.
"""

from cs_fast_apps.bench.peers import *  # noqa: F401,F403
from cs_fast_apps.bench.peers import __doc__ as _doc  # noqa: F401
