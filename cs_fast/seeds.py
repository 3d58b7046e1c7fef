"""The seeds of a run over several inputs: one rule for every entry point.

A run has a root seed ``S`` (given, or fresh OS entropy recorded with the
results); input ``i`` draws its noise from :func:`input_seed` ``(S, i)``, so
its certificates do not depend on which process certifies it, in what order,
or how many inputs come before it. ``cs-fast certify`` (in this process or on
Ray workers), :func:`cs_fast.distributed.certify_many` and ``cs-fast demo``
all follow it: the same ``S`` gives the same certificate for input ``i``.
"""

import numpy as np

from ._checks import check_int


def root_seed(seed):
    """A run's root seed: ``seed`` (an integer >= 0), or fresh OS entropy (a 128-bit integer) when None."""
    return np.random.SeedSequence().entropy if seed is None else check_int(seed, "seed", minimum=0)


def input_seed(run_seed, index):
    """The seed of input ``index`` in a run seeded with ``run_seed``: a 128-bit int.

    Derived with :class:`numpy.random.SeedSequence` from ``(run_seed, index)``,
    so inputs get independent noise. Pass it as ``CenterSmoothing(seed=...)``
    to reproduce that input's certificate.

    Examples
    --------
    >>> from cs_fast.seeds import input_seed
    >>> input_seed(0, 1) == input_seed(0, 1) != input_seed(0, 2)
    True
    """
    run_seed = check_int(run_seed, "run_seed", minimum=0)
    index = check_int(index, "index", minimum=0)
    words = np.random.SeedSequence(entropy=run_seed, spawn_key=(index,)).generate_state(4, np.uint32)
    return int(sum(int(w) << (32 * k) for k, w in enumerate(words)))
