"""Training the shipped models (a leaf: nothing in the library imports it).

* :mod:`.ddpm`: the noise predictors' recipes and their deterministic training;
* :mod:`.classifier`: the domain feature extractors behind the domain FID.
"""

from __future__ import annotations

from vrg_analysis.training.classifier import CLASSIFIERS, train_classifier
from vrg_analysis.training.ddpm import RECIPES, Recipe, TrainResult, resolve_recipe, train

__all__ = [
    "RECIPES",
    "CLASSIFIERS",
    "Recipe",
    "TrainResult",
    "resolve_recipe",
    "train",
    "train_classifier",
]
