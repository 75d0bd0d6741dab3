"""Algorithm 1: profile a model's prediction error on its training data."""

from __future__ import annotations

from vrg_analysis.profiling.algorithm1 import profile_prediction_error

__all__ = ["profile_prediction_error"]
