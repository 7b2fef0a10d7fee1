"""Metrics of the reports' projections. Every replica reads the same database: dashboards take ``max``."""

from __future__ import annotations

from prometheus_client import Gauge

rebuild_lag = Gauge(
    "kariz_reports_rebuild_lag_records",
    "Records of the retained topics a running rebuild has still to read (0: none running or caught up)",
)
rebuilding = Gauge("kariz_reports_rebuilding", "1 while a rebuild fills a new generation of the projections")
generation = Gauge("kariz_reports_generation", "The generation of the projections the reports read")
