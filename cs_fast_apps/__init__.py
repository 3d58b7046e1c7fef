"""The applications built on the ``cs_fast`` library: the ``cs-fast`` command and what it runs.

- :mod:`cs_fast_apps.cli`: the ``cs-fast`` command (``certify``, ``plan`` and the subcommands below).
- :mod:`cs_fast_apps.demo`: ``cs-fast demo``, the digits autoencoder of the paper's Figure 5.
- :mod:`cs_fast_apps.audit`: ``cs-fast audit``, certificates tested against perturbations and attacks.
- :mod:`cs_fast_apps.faces`, :mod:`cs_fast_apps.perceptual`: the ``cs-fast faces`` and
  ``cs-fast perceptual`` sweeps over ``(h, eps1)``, on :mod:`cs_fast.models`' base models;
  :mod:`cs_fast_apps.sweep` holds their shared options, seeds and report.
- :mod:`cs_fast_apps.bench`: ``cs-fast bench`` (or ``python -m cs_fast_apps.bench``), the benchmark report.
- :mod:`cs_fast_apps.output_dir`: the commands' fresh, timestamped default output folders.

Imports point downward only: these modules import ``cs_fast``, and ``cs_fast`` imports none of
them (``tests/test_layers.py`` checks it), so ``import cs_fast`` loads the library alone.
"""
