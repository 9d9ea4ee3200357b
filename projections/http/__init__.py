"""The HTTP API and the customer portal over the read models."""
