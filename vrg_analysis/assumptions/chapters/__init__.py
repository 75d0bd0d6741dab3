"""The audit chapters: each audit notebook's computation, tables, figures and prose numbers.

One module per audit notebook (``gaussian``, ``independence``, ``transfer``, ``calibration``), with
``Params``, ``run(params) -> Result``, the rendering of that result and the verdict table it writes
for the scorecard; the notebooks and ``python -m vrg_analysis audit`` call them.
"""
