"""Adapters to the outside world: MongoDB, Prometheus, and the in-memory unit of work for tests."""
