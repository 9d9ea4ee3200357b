"""Local tooling for one machine: Kafka and Redis as child processes (`services`) and the
demo. Sits above every processor, below the CLI.
"""
