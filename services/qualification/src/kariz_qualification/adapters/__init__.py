"""Adapters: MongoDB persistence of leads and the rule set, the in-memory stand-in the use-case tests
run on, and the Prometheus metrics."""
