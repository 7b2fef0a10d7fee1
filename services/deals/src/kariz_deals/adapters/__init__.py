"""Adapters to the outside world: the MongoDB repositories of deals and accounts."""
