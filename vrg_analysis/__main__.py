"""``python -m vrg_analysis``: the command line of :mod:`vrg_analysis.cli`."""

from vrg_analysis.cli import main

raise SystemExit(main())
