"""The I/O-free fold shared by every path: the doors and the admission decision
(`admission`), the worker's batch fold (`batch`), fold records and their encoders.
Imports `billing`, the config and wire layers.
"""
