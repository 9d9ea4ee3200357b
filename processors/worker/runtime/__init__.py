"""Faust's runtime for the fold worker, behind the port `processors.worker.ports.Runtime`:
the only package that imports faust, mode or aiokafka, and the only one that touches
their private attributes (docs/decisions/0001-faust-runtime.md lists them). Import
`processors.worker.runtime.app.FaustRuntime` explicitly; this package's `__init__`
imports nothing, so the port can be read without loading Faust.
"""
