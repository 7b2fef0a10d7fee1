"""The two Grafana dashboards, service health and the sales funnel, and the ConfigMaps that carry them to
Grafana's dashboard sidecar in Kubernetes."""

from __future__ import annotations

import json
from typing import Any

from .common import yaml_documents
from .grafana import GROUPS, RANGE, RATE, Panel, Row, dashboard


def _by_service(metric_filter: str, by: str = "service") -> str:
    return f"sum by ({by}) (rate({metric_filter}[{RATE}]))"


def service_health() -> dict[str, Any]:
    http_5xx = 'kariz_http_requests_total{status=~"5.."}'
    consumed_failed = 'kariz_events_consumed_total{outcome=~"retried|dead_lettered"}'
    lag_by_group = f"sum by (consumergroup) (kafka_consumergroup_lag{{{GROUPS}}})"
    rows = [
        Row(
            "Availability",
            [
                Panel(
                    "Replicas up",
                    [('sum by (service) (up{job="kariz"})', "{{service}}")],
                    kind="stat",
                    width=8,
                    height=5,
                ),
                Panel(
                    "Dependencies reachable (1 = yes)",
                    [("min by (service, dependency) (kariz_dependency_up)", "{{service}} → {{dependency}}")],
                    kind="stat",
                    width=8,
                    height=5,
                    description="Set by each /readyz: the database and the broker.",
                ),
                Panel(
                    "Handlers in progress",
                    [
                        (
                            "sum by (app_name, handler) (faststream_received_messages_in_process)",
                            "{{app_name}} {{handler}}",
                        )
                    ],
                    kind="stat",
                    width=8,
                    height=5,
                ),
            ],
        ),
        Row(
            "HTTP",
            [
                Panel(
                    "Requests per second",
                    [(_by_service("kariz_http_requests_total"), "{{service}}")],
                    unit="reqps",
                    width=8,
                ),
                Panel(
                    "Server errors (5xx share)",
                    [
                        (
                            # "or … * 0" gives 0 instead of no data while nothing fails.
                            f"(sum by (service) (rate({http_5xx}[{RATE}]))"
                            f" or sum by (service) (rate(kariz_http_requests_total[{RATE}])) * 0)"
                            f" / sum by (service) (rate(kariz_http_requests_total[{RATE}]))",
                            "{{service}}",
                        )
                    ],
                    unit="percentunit",
                    width=8,
                ),
                Panel(
                    "Latency p95",
                    [
                        (
                            "histogram_quantile(0.95, sum by (service, le) "
                            f"(rate(kariz_http_request_duration_seconds_bucket[{RATE}])))",
                            "{{service}}",
                        )
                    ],
                    unit="s",
                    width=8,
                ),
                Panel(
                    "Requests by route and status",
                    [
                        (
                            "sum by (service, method, route, status) "
                            f"(rate(kariz_http_requests_total[{RATE}]))",
                            "{{service}} {{method}} {{route}} {{status}}",
                        )
                    ],
                    unit="reqps",
                    width=12,
                ),
                Panel(
                    "Latency p95 by route",
                    [
                        (
                            "histogram_quantile(0.95, sum by (service, method, route, le) "
                            f"(rate(kariz_http_request_duration_seconds_bucket[{RATE}])))",
                            "{{service}} {{method}} {{route}}",
                        )
                    ],
                    unit="s",
                    width=12,
                ),
            ],
        ),
        Row(
            "Events",
            [
                Panel(
                    "Consumed per second, by outcome",
                    [
                        (
                            _by_service("kariz_events_consumed_total", "service, topic, outcome"),
                            "{{service}} {{topic}} {{outcome}}",
                        )
                    ],
                    unit="ops",
                    width=8,
                ),
                Panel(
                    "Consumer failures (retried or dead-lettered share)",
                    [
                        (
                            f"(sum by (service) (rate({consumed_failed}[{RATE}]))"
                            f" or sum by (service) (rate(kariz_events_consumed_total[{RATE}])) * 0)"
                            f" / sum by (service) (rate(kariz_events_consumed_total[{RATE}]))",
                            "{{service}}",
                        )
                    ],
                    unit="percentunit",
                    width=8,
                ),
                Panel(
                    "Handling time p95 (transaction included)",
                    [
                        (
                            "histogram_quantile(0.95, sum by (service, topic, le) "
                            f"(rate(kariz_event_handle_seconds_bucket[{RATE}])))",
                            "{{service}} {{topic}}",
                        )
                    ],
                    unit="s",
                    width=8,
                ),
                Panel(
                    "Handler results (FastStream)",
                    [
                        (
                            "sum by (app_name, handler, status) "
                            f"(rate(faststream_received_processed_messages_total[{RATE}]))",
                            "{{app_name}} {{handler}} {{status}}",
                        )
                    ],
                    unit="ops",
                    width=8,
                ),
                Panel(
                    "Handler duration p95 (FastStream)",
                    [
                        (
                            "histogram_quantile(0.95, sum by (app_name, handler, le) "
                            f"(rate(faststream_received_processed_messages_duration_seconds_bucket[{RATE}])))",
                            "{{app_name}} {{handler}}",
                        )
                    ],
                    unit="s",
                    width=8,
                ),
                Panel(
                    "Published per second (FastStream), by status",
                    [
                        (
                            "sum by (app_name, destination, status) "
                            f"(rate(faststream_published_messages_total[{RATE}]))",
                            "{{app_name}} → {{destination}} {{status}}",
                        )
                    ],
                    unit="ops",
                    width=8,
                ),
            ],
        ),
        Row(
            "Consumer lag (kafka-exporter)",
            [
                Panel(
                    "Lag by consumer group",
                    [(lag_by_group, "{{consumergroup}}")],
                    width=12,
                    description="kafka_consumergroup_lag from kafka-exporter (Strimzi spec.kafkaExporter): "
                    "records written to a topic that the group has not committed yet.",
                ),
                Panel(
                    "Lag by service",
                    [
                        (
                            f'sum by (service) (label_replace({lag_by_group}, "service", "$1", '
                            '"consumergroup", "$group_prefix-([^.]+)\\\\..*"))',
                            "{{service}}",
                        )
                    ],
                    width=12,
                ),
            ],
        ),
        Row(
            "Outbox and dead letters",
            [
                Panel(
                    "Outbox backlog (events not yet published)",
                    [("max by (service) (kariz_outbox_backlog)", "{{service}}")],
                    width=8,
                ),
                Panel(
                    "Oldest unpublished event",
                    [("max by (service) (kariz_outbox_oldest_age_seconds)", "{{service}}")],
                    unit="s",
                    width=8,
                ),
                Panel(
                    "Published by the relay per second",
                    [
                        (
                            _by_service("kariz_events_published_total", "service, topic"),
                            "{{service}} {{topic}}",
                        )
                    ],
                    unit="ops",
                    width=8,
                ),
                Panel(
                    "Dead letters (in the time range)",
                    [
                        (
                            f"sum by (service, topic, reason) (increase(kariz_dead_letters_total[{RANGE}]))",
                            "{{service}} {{topic}} {{reason}}",
                        )
                    ],
                    kind="table",
                    width=12,
                ),
                Panel(
                    "Dead letters per minute",
                    [
                        (
                            "sum by (service, topic) (rate(kariz_dead_letters_total[5m])) * 60",
                            "{{service}} {{topic}}",
                        )
                    ],
                    width=12,
                ),
            ],
        ),
        Row(
            "Timers (reminders, SLAs, expiries)",
            [
                Panel(
                    "Timers pending",
                    [("max by (service) (kariz_timers_pending)", "{{service}}")],
                    width=8,
                    description="Armed and not yet fired, counted in the service's database by every "
                    "replica: max, not sum, across them.",
                ),
                Panel(
                    "Oldest overdue timer",
                    [("max by (service) (kariz_timers_oldest_overdue_seconds)", "{{service}}")],
                    unit="s",
                    width=8,
                    description="How long the most overdue timer has waited past its due time; 0 when none "
                    "is overdue. KarizTimersBehind fires above 60 s for 5 minutes.",
                ),
                Panel(
                    "Timers fired per second",
                    [(_by_service("kariz_timers_fired_total"), "{{service}}")],
                    unit="ops",
                    width=8,
                ),
            ],
        ),
        Row(
            "Notifications and processes",
            [
                Panel(
                    "Deliveries per second by channel",
                    [
                        (_by_service("kariz_notifications_sent_total", "channel"), "sent {{channel}}"),
                        (_by_service("kariz_notifications_failed_total", "channel"), "failed {{channel}}"),
                        (_by_service("kariz_notifications_gave_up_total", "channel"), "gave up {{channel}}"),
                    ],
                    unit="ops",
                    width=8,
                ),
                Panel(
                    "CPU (cores)",
                    [
                        (
                            f'sum by (service) (rate(process_cpu_seconds_total{{job="kariz"}}[{RATE}]))',
                            "{{service}}",
                        )
                    ],
                    width=8,
                ),
                Panel(
                    "Resident memory",
                    [('sum by (service) (process_resident_memory_bytes{job="kariz"})', "{{service}}")],
                    unit="bytes",
                    width=8,
                ),
            ],
        ),
        Row(
            "Reports' projections",
            [
                Panel(
                    "Rebuild lag (records)",
                    [("max(kariz_reports_rebuild_lag_records)", "to read")],
                    width=8,
                    description="Records of the retained topics `kariz-reports rebuild` has still to read; "
                    "0 when none runs. Read from the reports database by every replica: max, not sum.",
                ),
                Panel(
                    "Generation read",
                    [
                        ("max(kariz_reports_generation)", "active"),
                        ("max(kariz_reports_rebuilding)", "rebuilding"),
                    ],
                    width=8,
                    description="The projections' generation the reports read, and 1 while a rebuild "
                    "fills the next one.",
                ),
            ],
        ),
    ]
    return dashboard(
        "kariz-service-health",
        "Kariz / Service health",
        "Per service: rate, errors and duration of HTTP and events, consumer lag, outbox, dead letters, "
        "timers.",
        rows,
        "now-3h",
    )


def _increase(metric: str) -> str:
    return f"sum(increase({metric}[{RANGE}]))"


OPEN_STAGES = 'stage!~"won|lost"'
#: The response SLA's breaches: the LeadResponseOverdue events the outbox relay published.
BREACHES = 'kariz_events_published_total{topic="kariz.lead-response-overdue.v1"}'


def sales_funnel() -> dict[str, Any]:
    won = _increase("kariz_deals_won_total")
    lost = _increase("kariz_deals_lost_total")
    win_rate = f"{won} / ({won} + {lost})"
    cycle_sum = _increase('kariz_deals_cycle_duration_seconds_sum{outcome="won"}')
    cycle_count = _increase('kariz_deals_cycle_duration_seconds_count{outcome="won"}')
    cycle_days = f"{cycle_sum} / {cycle_count} / 86400"
    qualified = _increase('kariz_qualification_decisions_total{outcome="qualified"}')
    avg_won_amount = f"{_increase('kariz_deals_won_amount_total')} / {won}"
    open_deals = f"sum(max by (stage) (kariz_deals_pipeline_deals{{{OPEN_STAGES}}}))"
    rows = [
        Row(
            "Leads",
            [
                Panel(
                    "Leads captured",
                    [(_increase("kariz_leads_captured_total"), "leads")],
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Since the newest lead",
                    [("time() - max(kariz_leads_last_captured_timestamp_seconds)", "")],
                    kind="stat",
                    unit="s",
                    width=6,
                ),
                Panel(
                    "Leads by source",
                    [(f"sum by (source) (increase(kariz_leads_captured_total[{RANGE}]))", "{{source}}")],
                    kind="bargauge",
                    width=6,
                ),
                Panel(
                    "Duplicates (touches of known leads) by source",
                    [(f"sum by (source) (increase(kariz_leads_duplicates_total[{RANGE}]))", "{{source}}")],
                    kind="bargauge",
                    width=6,
                ),
                Panel(
                    "CSV import rows by outcome",
                    [(f"sum by (outcome) (increase(kariz_leads_import_rows_total[{RANGE}]))", "{{outcome}}")],
                    kind="bargauge",
                    width=6,
                    description="Rows of CSV imports (POST /imports): created (new leads), duplicate, failed",
                ),
                Panel(
                    "Activities by channel",
                    [(f"sum by (channel) (increase(kariz_leads_activities_total[{RANGE}]))", "{{channel}}")],
                    kind="bargauge",
                    width=6,
                    description="Activities reps logged on leads (POST /leads/{id}/activities)",
                ),
                Panel(
                    "Activities by outcome",
                    [(f"sum by (outcome) (increase(kariz_leads_activities_total[{RANGE}]))", "{{outcome}}")],
                    kind="bargauge",
                    width=6,
                ),
                Panel(
                    "Leads queued: no rep of the team available",
                    # A team's series exists once it queued a lead: "or vector(0)" answers 0 before that.
                    [(f"sum(increase(kariz_leads_queued_total[{RANGE}])) or vector(0)", "queued")],
                    kind="stat",
                    width=6,
                    description="New leads an assignment rule gave to a team whose reps were all away, "
                    "inactive or at capacity (LeadQueued): owned by queue:<team> until assigned",
                ),
                Panel(
                    "Duplicate leads merged",
                    [(f"sum(increase(kariz_leads_merges_total[{RANGE}]))", "merges")],
                    kind="stat",
                    width=6,
                    description="POST /leads/{id}/merge: two records of one person made one (LeadsMerged)",
                ),
                Panel(
                    "Response SLA breaches",
                    [(f"sum(increase({BREACHES}[{RANGE}]))", "breaches")],
                    kind="stat",
                    width=6,
                    description="New leads that went past their response SLA with no action by their owner "
                    "(LeadResponseOverdue)",
                ),
                Panel(
                    "Response SLA breaches per hour",
                    [(f"sum(increase({BREACHES}[1h]))", "breaches")],
                    width=18,
                    description="KarizLeadResponseBreachesRising fires when an hour has over 10, twice the "
                    "hour before",
                ),
            ],
        ),
        Row(
            "Qualification",
            [
                Panel(
                    "Qualification rate (qualified / captured)",
                    [(f"{qualified} / {_increase('kariz_leads_captured_total')}", "")],
                    kind="stat",
                    unit="percentunit",
                    width=6,
                ),
                Panel(
                    # The reason is a kind (score, answers, engagement, ...), a handful of series.
                    "Decisions by outcome and reason",
                    [
                        (
                            "sum by (outcome, reason) "
                            f"(increase(kariz_qualification_decisions_total[{RANGE}]))",
                            "{{outcome}}: {{reason}}",
                        )
                    ],
                    kind="piechart",
                    width=6,
                ),
                Panel(
                    "Score distribution",
                    [(f"sum by (le) (increase(kariz_qualification_score_bucket[{RANGE}]))", "{{le}}")],
                    kind="bargauge",
                    width=6,
                    options={"displayMode": "basic", "orientation": "vertical"},
                ),
                Panel(
                    "Median score by trigger",
                    [
                        (
                            "histogram_quantile(0.5, sum by (trigger, le) "
                            f"(increase(kariz_qualification_score_bucket[{RANGE}])))",
                            "{{trigger}}",
                        )
                    ],
                    kind="stat",
                    width=6,
                ),
            ],
        ),
        Row(
            "Pipeline",
            [
                Panel(
                    "Open pipeline value",
                    [
                        (f"sum(max by (stage) (kariz_deals_pipeline_value{{{OPEN_STAGES}}}))", "value"),
                        (
                            f"sum(max by (stage) (kariz_deals_pipeline_weighted_value{{{OPEN_STAGES}}}))",
                            "weighted",
                        ),
                    ],
                    kind="stat",
                    width=6,
                    description="Read from the deals database by every replica: max, not sum, across them.",
                ),
                Panel(
                    "Value by stage",
                    [
                        ("max by (stage) (kariz_deals_pipeline_value)", "{{stage}}"),
                        ("max by (stage) (kariz_deals_pipeline_weighted_value)", "{{stage}} weighted"),
                    ],
                    kind="bargauge",
                    width=9,
                ),
                Panel(
                    "Deals by stage",
                    [("max by (stage) (kariz_deals_pipeline_deals)", "{{stage}}")],
                    kind="bargauge",
                    width=9,
                ),
                Panel(
                    "Stalled deals by stage",
                    [("max by (pipeline, stage) (kariz_deals_stalled)", "{{pipeline}} / {{stage}}")],
                    kind="bargauge",
                    width=9,
                    description="Open deals past their stage's rot limit (DealStalled fired, no move or "
                    "activity since); read from the deals database by every replica: max across them. "
                    "KarizDealsStalling fires when more than 10 sit in one stage for 30 minutes.",
                ),
                Panel(
                    "Deals opened",
                    [(_increase("kariz_deals_opened_total"), "opened")],
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Stage moves (from → to)",
                    [
                        (
                            "sum by (from_stage, to_stage) "
                            # Every possible move is exported from 0; the table lists those that happened.
                            f"(increase(kariz_deals_stage_transitions_total[{RANGE}])) > 0",
                            "{{from_stage}} → {{to_stage}}",
                        )
                    ],
                    kind="table",
                    width=9,
                ),
                Panel(
                    "Average time in stage",
                    [
                        (
                            f"sum by (stage) (increase(kariz_deals_stage_duration_seconds_sum[{RANGE}])) / "
                            f"sum by (stage) (increase(kariz_deals_stage_duration_seconds_count[{RANGE}]))",
                            "{{stage}}",
                        )
                    ],
                    kind="bargauge",
                    unit="s",
                    width=9,
                ),
            ],
        ),
        Row(
            "Closing",
            [
                Panel("Win rate (won / closed)", [(win_rate, "")], kind="stat", unit="percentunit", width=6),
                Panel(
                    "Won and lost",
                    [
                        (won, "won"),
                        (lost, "lost"),
                        (_increase("kariz_deals_won_amount_total"), "won amount"),
                        (_increase("kariz_deals_lost_amount_total"), "lost amount"),
                    ],
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Average sales cycle (won)",
                    [(cycle_days, "days")],
                    kind="stat",
                    unit="d",
                    width=6,
                ),
                Panel(
                    "Sales velocity (per day)",
                    [(f"{open_deals} * ({avg_won_amount}) * ({win_rate}) / ({cycle_days})", "per day")],
                    kind="stat",
                    width=6,
                    description="Open deals * average won amount * win rate / average cycle in days.",
                ),
                Panel(
                    "Losses by reason",
                    [(f"sum by (reason) (increase(kariz_deals_lost_total[{RANGE}]))", "{{reason}}")],
                    kind="piechart",
                    width=8,
                    description="The reason's leading code (price, competitor, no_budget, no_decision, "
                    "timing, product_fit, lost_contact) or other.",
                ),
                Panel(
                    "Losses by stage",
                    [
                        (
                            f"sum by (lost_at_stage) (increase(kariz_deals_lost_total[{RANGE}]))",
                            "{{lost_at_stage}}",
                        )
                    ],
                    kind="bargauge",
                    width=8,
                ),
                Panel(
                    "Notifications sent and failed",
                    [
                        (
                            f"sum by (channel) (increase(kariz_notifications_sent_total[{RANGE}]))",
                            "sent {{channel}}",
                        ),
                        (
                            f"sum by (channel) (increase(kariz_notifications_failed_total[{RANGE}]))",
                            "failed {{channel}}",
                        ),
                    ],
                    kind="bargauge",
                    width=8,
                ),
                Panel(
                    "Content to customers: sent, and skipped by reason",
                    [
                        (
                            "sum by (outcome, reason) "
                            f"(increase(kariz_notifications_content_total[{RANGE}]))",
                            "{{outcome}} {{reason}}",
                        ),
                    ],
                    kind="bargauge",
                    width=24,
                    description="Content actions' e-mails to leads' contacts: sent, or skipped (no_consent, "
                    "consent_withdrawn, unsubscribed, no_contact, no_content...).",
                ),
                Panel(
                    "Webhook subscriptions suspended",
                    [
                        (
                            f"sum (increase(kariz_notifications_subscriptions_suspended_total[{RANGE}]))",
                            "suspended",
                        ),
                    ],
                    kind="bargauge",
                    width=24,
                    description="Managed subscriptions Kariz suspended after "
                    "KARIZ_SUBSCRIPTION_SUSPEND_AFTER deliveries in a row failed; "
                    "KarizSubscriptionsSuspended fires on any.",
                ),
            ],
        ),
        Row(
            "Quotes",
            [
                Panel(
                    "Quotes by status reached",
                    [
                        (
                            f"sum by (to_status) (increase(kariz_deals_quote_transitions_total[{RANGE}]))",
                            "{{to_status}}",
                        )
                    ],
                    kind="bargauge",
                    width=12,
                    description="Quotes made (draft or awaiting approval), approved or refused, sent, "
                    "accepted, rejected and expired in the range: one count per change of status.",
                ),
                Panel(
                    "Quote status changes (from → to)",
                    [
                        (
                            "sum by (from_status, to_status) "
                            f"(increase(kariz_deals_quote_transitions_total[{RANGE}]))",
                            "{{from_status}} → {{to_status}}",
                        )
                    ],
                    kind="table",
                    width=12,
                    # Every transition is listed, 0 included: a deployment that has made no quote yet
                    # shows the possible ones rather than no data.
                    description="Every possible change of a quote's status, each exported from 0.",
                ),
            ],
        ),
        Row(
            "Objections",
            [
                Panel(
                    "Objections by category",
                    [
                        (
                            f"sum by (category) (increase(kariz_deals_objections_total[{RANGE}]))",
                            "{{category}}",
                        )
                    ],
                    kind="bargauge",
                    width=12,
                    description="Objections reps recorded on deals (POST /deals/{id}/objections, "
                    "ObjectionRecorded); each answer's usage and win rate are in GET /objection-answers",
                ),
                Panel(
                    "Objections recorded",
                    [(f"{_increase('kariz_deals_objections_total')}", "objections")],
                    kind="stat",
                    width=12,
                ),
            ],
        ),
    ]
    return dashboard(
        "kariz-sales-funnel",
        "Kariz / Sales funnel",
        "Leads by source, qualification, the pipeline by stage, win rate, cycle length, velocity, losses.",
        rows,
        "now-30d",
    )


def dashboards() -> dict[str, dict[str, Any]]:
    return {"kariz-service-health.json": service_health(), "kariz-sales-funnel.json": sales_funnel()}


def dashboard_configmaps() -> str:
    docs = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"grafana-dashboard-{name.removesuffix('.json')}",
                # Grafana's dashboard sidecar loads every ConfigMap with this label, into this folder.
                "labels": {"grafana_dashboard": "1"},
                "annotations": {"grafana_folder": "Kariz"},
            },
            "data": {name: json.dumps(board, indent=2) + "\n"},
        }
        for name, board in dashboards().items()
    ]
    return yaml_documents(docs)
