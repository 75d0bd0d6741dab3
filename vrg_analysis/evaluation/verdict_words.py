"""How an assumption's verdict reads in the book (audit pages, scorecard, claims page).

A module of its own, outside :mod:`vrg_analysis.assumptions`, so that a chapter which only words
an audit's verdict (the claims page's rows) does not take every audit module into its code version
(:func:`vrg_analysis.studies.result_identity.code_version`): an edit to an audit then leaves the
committed full-size results of the sampling chapters current.
"""

from __future__ import annotations

__all__ = ["ASSUMPTION_WORDS"]

#: An assumption's verdict (one of :data:`vrg_analysis.evaluation.stats.VERDICTS`, or an
#: aggregate of several) in words.
ASSUMPTION_WORDS: dict[str, str] = {
    "supported": "holds",
    "contradicted": "violated",
    "mixed": "holds in part",
    "inconclusive": "not settled",
    "not measured": "not audited",
}
