"""The package version (one home, read by the package and by every artifact's provenance)."""

__version__ = "0.1.0"
