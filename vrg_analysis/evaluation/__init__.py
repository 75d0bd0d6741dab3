"""Scoring samples and deciding: metrics, feature extractors, and the statistics engine.

* :mod:`.metrics`: the Frechet distance and exact sample quality on the mixtures;
* :mod:`.features`: the domain feature extractors, their reference statistics and FID floors;
* :mod:`.stats`: intervals, tests, multiple testing and the one verdict rule of the book.
"""
