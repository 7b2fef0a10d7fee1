"""Synthetic sales traffic for Kariz (a dev tool, not part of any service)."""
