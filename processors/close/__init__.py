"""The period close: plan a window, read it from the log, fold it with the shared fold,
publish invoices and adjustments with idempotent ids.
"""
