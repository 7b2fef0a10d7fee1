"""Kariz deals: accounts and deals opened from qualified leads, pipelines and stages, won and lost."""
