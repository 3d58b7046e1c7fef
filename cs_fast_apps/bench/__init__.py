"""Benchmarks of cs_fast against its peers (scipy, torch, scikit-learn, numpy, the authors' loop).

``cs-fast bench`` (or ``python -m cs_fast_apps.bench``) runs the report:
:func:`add_bench_arguments` and :func:`main_bench` are its command-line
hooks. Modules: :mod:`.peers` (the peer implementations), :mod:`.workloads`
(data, sizes, cost model), :mod:`.measure` (timing, peak RSS, ceilings),
:mod:`.run` (the runs), :mod:`.report` (table, JSON), :mod:`.plots` (PNG),
:mod:`.end_to_end` (time to certify one input). The pytest-benchmark suites
live in the repository's ``bench/`` folder.
"""

from .command import add_bench_arguments, main_bench
from .end_to_end import end_to_end

__all__ = ["add_bench_arguments", "end_to_end", "main_bench"]
