"""Business metrics of lead capture. Labels are bounded: the source is one of a fixed set."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from kariz_shared.contracts.events import LeadSource
from kariz_shared.runtime.metrics import registry

captured = Counter(
    "kariz_leads_captured_total", "New leads captured, by source", ["source"], registry=registry
)
duplicates = Counter(
    "kariz_leads_duplicates_total",
    "Captures of a contact that already was a lead (recorded as a touch), by source",
    ["source"],
    registry=registry,
)
last_captured = Gauge(
    "kariz_leads_last_captured_timestamp_seconds",
    "Unix time of the newest lead captured (read from the database; 0 before the first lead)",
    registry=registry,
)

# Every source starts at 0, so increase() and rates see a lead's first capture from a source too.
for _source in LeadSource:
    captured.labels(_source.value)
    duplicates.labels(_source.value)
