"""Temporary re-export of :mod:`vrg_analysis.params` (removed once every chapter imports it)."""

from vrg_analysis.params import *  # noqa: F403
from vrg_analysis.params import __all__  # noqa: F401
