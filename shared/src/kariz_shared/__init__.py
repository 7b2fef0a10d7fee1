"""Kariz shared package: event contracts, envelope, settings, persistence, messaging, metrics."""
