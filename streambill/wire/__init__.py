"""The wire form: Avro codec, conversions between events and records, field rules, the fast
encoders and decoders checked against the codec, the partitioner, and reading a topic
back (`tail`). Imports `billing` and `streambill.config` only.
"""
