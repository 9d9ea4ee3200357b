"""The live fold worker: the Faust runtime, the pipeline that feeds the batch fold and
commits its outputs, the dead-letter tools. Imports the fold layer and below.
"""
