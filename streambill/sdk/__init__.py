"""The producer SDK: `UsageClient.report` validates at the door and publishes with the
documented partitioner. Imports the wire and config layers only.
"""
