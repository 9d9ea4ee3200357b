"""`streambill simulate`: a usage file folded and invoiced offline through
`billing.replay`, the same admission and fold as the worker and the close.
"""
