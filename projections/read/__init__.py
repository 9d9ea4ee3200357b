"""Read models: the projector that folds customer-state into a store, and the store port
with its in-memory and Redis adapters.
"""
