"""The book's studies: one paired comparison engine, one module per chapter, and the claims.

Each chapter module has ``Params`` (its parameters, CI-sized defaults), ``run(params) -> Result``
and the rendering and findings of that result; the notebook calls them.
"""
