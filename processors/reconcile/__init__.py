"""`streambill reconcile`: recompute the closes from the log and compare them with what was
published and with what the live worker folded.
"""
