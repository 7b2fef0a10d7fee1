"""Kariz leads: capture, normalisation, duplicates and assignment of leads; emits LeadCaptured."""
