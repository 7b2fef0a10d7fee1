"""Prometheus metrics every service exports, defined once. Label sets are bounded: no ids in labels.

Business metrics belong to the service that owns the fact (for example ``kariz_leads_captured_total``
in leads) and are declared in that service's ``metrics`` module with the same client.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

registry = REGISTRY

events_published = Counter(
    "kariz_events_published_total", "Events published by the outbox relay", ["service", "topic"]
)
events_consumed = Counter(
    "kariz_events_consumed_total",
    "Events taken from Kafka, by outcome (processed, duplicate, dead_lettered, retried)",
    ["service", "topic", "outcome"],
)
event_handle_seconds = Histogram(
    "kariz_event_handle_seconds",
    "Time to handle one consumed event, transaction included",
    ["service", "topic"],
)
dead_letters = Counter(
    "kariz_dead_letters_total", "Messages sent to a dead-letter topic", ["service", "topic", "reason"]
)
outbox_backlog = Gauge(
    "kariz_outbox_backlog", "Events written to the outbox but not yet published", ["service"]
)
outbox_oldest_age = Gauge(
    "kariz_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox event", ["service"]
)
outbox_relay_leader = Gauge(
    "kariz_outbox_relay_leader", "1 on the replica that holds the outbox relay lease", ["service"]
)
http_requests = Counter(
    "kariz_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
http_request_seconds = Histogram(
    "kariz_http_request_duration_seconds", "HTTP request duration", ["service", "method", "route"]
)
dependency_up = Gauge(
    "kariz_dependency_up",
    "1 when the dependency answered the last readiness check",
    ["service", "dependency"],
)
timers_pending = Gauge(
    "kariz_timers_pending", "Timers armed and not yet fired (reminders, SLAs, expiries)", ["service"]
)
timers_oldest_overdue = Gauge(
    "kariz_timers_oldest_overdue_seconds",
    "How long the most overdue timer has been due without firing (0 when none is overdue)",
    ["service"],
)
timers_fired = Counter(
    "kariz_timers_fired_total", "Timers fired: their event written to the outbox", ["service"]
)
state_records = Counter(
    "kariz_state_records_total",
    "Records of a state topic (the roster) read into memory, by outcome (applied, removed, dead_lettered)",
    ["service", "topic", "outcome"],
)
state_keys = Gauge(
    "kariz_state_keys", "Keys of a state topic this replica holds in memory", ["service", "topic"]
)
state_caught_up = Gauge(
    "kariz_state_caught_up",
    "1 once this replica read a state topic up to the end offsets it saw when it started reading",
    ["service", "topic"],
)
units_retried = Counter(
    "kariz_units_retried_total",
    "Units of work started again whole after a transient failure of the attempt before (a write "
    "conflict with a concurrent unit, most often): a storm of these is work done and thrown away",
    ["service"],
)
