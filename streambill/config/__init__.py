"""Configuration, the bottom layer above `billing/`: settings from the environment, the
catalog file, topic specs and Kafka client security. Imports only `billing` and the
standard library plus its clients' libraries; see docs/ARCHITECTURE.md (Layers).
"""
