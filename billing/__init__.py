"""streambill's pure domain core: money, catalog, rating, ledger fold, invoicing.

Standard library only (a test enforces it). Every process — the fold worker, the
period close, the projector, the API and `streambill simulate` — calls these same
functions, so live state and replay cannot disagree.
"""
