"""``python -m cs_fast_apps.bench``: the benchmark report without the ``cs-fast`` command."""

import sys

from .command import main

sys.exit(main())
