"""``python -m pdh.process CONFIG NAME --out DIR``: one process of a config, every kind registered.

The framework's :func:`framework.process.main` does the work; this entry point sits in
the tools layer so that the kinds it can start (the topology) are all known to it.
"""

from __future__ import annotations

import sys

import pdh.topology  # noqa: F401  (registers every kind)
from framework.process import main

if __name__ == "__main__":
    sys.exit(main())
