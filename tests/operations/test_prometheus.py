"""The dashboards and alert rules, checked against a real Prometheus scraping the four services.

The four services run as processes on the embedded broker and database (as in tests/e2e) and get sales
traffic over their HTTP APIs: leads captured from several sources, a duplicate, bad requests, a BANT
call, deals moved to won and to lost, a record qualification cannot read (a dead letter), and webhooks to
a subscriber that is down (failed deliveries). Prometheus (Debian's package; `make prometheus`) scrapes
them every second with the alert rules loaded. Then every PromQL expression of both dashboards and of the
rules is evaluated through Prometheus's HTTP API: it must parse, every metric it names must exist, and
every dashboard expression must return data. The rules must load and evaluate without error, and the
alerts this traffic should raise (dead letters, deliveries given up) are firing while the others are not.
A timer armed due in the leads service fires, so the timer panels have data too.

Alerts that need minutes of a condition (timers behind) are checked with `promtool test rules` on
synthetic series instead, and so are the timer panels' expressions.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiosmtpd.controller import Controller

from kariz_devkit.devstack import ServiceProcess, start_service, wait_ready
from kariz_devkit.embedded import ChildProcess, free_port, wait_for_port
from kariz_devkit.orphans import guarded
from kariz_devkit.sinks import Inbox
from kariz_devkit.testing import Backends, bearer, eventually, publish_raw, unique
from kariz_devkit.testing.operations import ConsumerLagExporter, debian_tool, metric_names
from kariz_shared.contracts.events import LeadCaptured, LeadResponseOverdue, LeadSource
from kariz_shared.persistence.store import Store
from kariz_shared.persistence.unit_of_work import MongoUnitOfWork, MongoUnitsOfWork
from kariz_shared.runtime.clock import SystemClock
from kariz_shared.runtime.settings import ServiceSettings
from kariz_shared.system import SERVICE_NAMES as SERVICES

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
# What Grafana puts in place of its variables; the test prefix stands in for the production "kariz".
RATE_INTERVAL = "30s"
RANGE = "10m"

# A broker of the module's own (``stack_backends``): the stack's consumers catch up on nothing earlier.
CATCH_UP_S = 60.0


@dataclass
class Observed:
    prometheus: str
    group_prefix: str
    logs: Path


@pytest.fixture(scope="module")
def smtp_port() -> Iterator[int]:
    controller = Controller(Inbox(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port
    controller.stop()


def _prometheus_config(targets: dict[str, int], lag_port: int) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                # As the ServiceMonitors do in Kubernetes: job "kariz", a `service` label, and the
                # metrics' own labels kept (honorLabels).
                "job_name": "kariz",
                "honor_labels": True,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port}"], "labels": {"service": name}}
                    for name, port in targets.items()
                ],
            },
            {"job_name": "kafka-exporter", "static_configs": [{"targets": [f"127.0.0.1:{lag_port}"]}]},
        ],
    }


@pytest.fixture(scope="module")
async def observed(
    stack_backends: Backends, smtp_port: int, tmp_path_factory: pytest.TempPathFactory, admin_token: str
) -> AsyncIterator[Observed]:
    backends = stack_backends
    work = Path(tmp_path_factory.mktemp("operations"))
    group_prefix = unique("ops")
    common = {
        **backends.env(),
        "KARIZ_KAFKA_GROUP_PREFIX": group_prefix,
        "KARIZ_OUTBOX_POLL_INTERVAL_S": "0.2",
        "KARIZ_METRICS_REFRESH_INTERVAL_S": "1",
        "KARIZ_SMTP_PORT": str(smtp_port),
        "KARIZ_DELIVERY_MAX_ATTEMPTS": "2",
        "KARIZ_DELIVERY_BACKOFF_S": "0.1",
        # A timer armed by another process (this test) is found within a second.
        "KARIZ_TIMER_IDLE_S": "1",
        # A team known at start: its queue counter is exported at 0 (the queued-leads panel).
        "KARIZ_TEAMS": json.dumps({"emea": ["alex@kariz.example", "sam@kariz.example"]}),
        # A subscriber that is down: its deliveries fail, are retried, and are given up.
        "KARIZ_WEBHOOK_SUBSCRIBERS": json.dumps(
            [
                {
                    "name": "down",
                    "url": f"http://127.0.0.1:{free_port()}/hook",
                    "secret": "s" * 32,
                    "events": ["*"],
                }
            ]
        ),
    }
    processes: list[ServiceProcess] = []
    prometheus: ChildProcess | None = None
    databases = {name: unique(f"ops_{name}") for name in SERVICES}
    try:
        for name in SERVICES:
            env = {**common, "KARIZ_MONGODB_DATABASE": databases[name]}
            processes.append(start_service(name, free_port(), env, work / "logs"))
        lag = ConsumerLagExporter(backends.kafka_bootstrap, group_prefix, free_port())
        config = work / "prometheus.yml"
        config.write_text(yaml.safe_dump(_prometheus_config({p.name: p.port for p in processes}, lag.port)))
        port = free_port()
        prometheus = await asyncio.to_thread(_start_prometheus, config, work, port)
        await wait_ready(processes)
        async with lag.serving():
            urls = {p.name: p.url for p in processes}
            await _sales_traffic(urls, backends, admin_token)
            await _arm_a_due_timer(backends, databases["leads"])
            yield Observed(f"http://127.0.0.1:{port}", group_prefix, work)
    finally:
        for p in processes:
            await asyncio.to_thread(p.stop)
        if prometheus is not None:
            await asyncio.to_thread(prometheus.stop, 20.0)


def _start_prometheus(config: Path, work: Path, port: int) -> ChildProcess:
    log = (work / "prometheus.log").open("ab")
    command = [
        debian_tool("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={work / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    process = subprocess.Popen(guarded(command), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port("127.0.0.1", port, 60, process)
    return ChildProcess("prometheus", process, log)


async def _sales_traffic(urls: dict[str, str], backends: Backends, token: str) -> None:
    async with httpx.AsyncClient(timeout=15, headers=bearer(token)) as http:

        async def capture(source: str, industry: str, size: int, country: str, title: str) -> str:
            body = {
                "contact": {"first_name": "Ada", "last_name": "Byron", "email": f"{unique('a')}@ops.example"}
                | {"title": title},
                "company": {"name": unique("Co"), "industry": industry, "size": size, "country": country},
                "source": source,
                "consent": True,
            }
            response = await http.post(f"{urls['leads']}/leads", json=body)
            assert response.status_code == 201, response.text
            lead_id: str = response.json()["id"]
            if source == "referral":  # the same contact again: a duplicate, counted as a touch
                again = await http.post(f"{urls['leads']}/leads", json=body)
                assert again.status_code == 200 and again.json()["duplicate"], again.text
            return lead_id

        strong = [
            await capture(source, "software", 450, "DE", "CEO")
            for source in ("referral", "partner", "web_form", "trade_show")
        ]
        middling = await capture("web_form", "manufacturing", 60, "FR", "IT Manager")
        # Client errors show up on the HTTP panels: an invalid body (422) and an unknown lead (404).
        assert (await http.post(f"{urls['leads']}/leads", json={"source": "web_form"})).status_code == 422
        assert (await http.get(f"{urls['leads']}/leads/{unique('L')}")).status_code == 404

        async def nurtured() -> bool:
            answer = await http.get(f"{urls['qualification']}/leads/{middling}/qualification")
            return answer.status_code == 200 and answer.json()["status"] == "nurture"

        await eventually(nurtured, timeout=CATCH_UP_S)
        bant = {"budget": "confirmed", "authority": "decision_maker", "need": "none", "timeline": "later"}
        response = await http.put(f"{urls['qualification']}/leads/{middling}/bant", json=bant)
        assert response.status_code == 200, response.text

        async def deal_of(lead_id: str) -> str | None:
            page = (await http.get(f"{urls['deals']}/deals", params={"lead_id": lead_id})).json()
            return page["items"][0]["id"] if page["items"] else None

        deals = [await eventually(lambda lead=lead: deal_of(lead), timeout=CATCH_UP_S) for lead in strong]
        paths = [
            "discovery demo proposal:48000 negotiation contract won",
            "discovery proposal:20000 won",
            "discovery lost",
            "discovery proposal:30000",
        ]
        for deal, path in zip(deals, paths, strict=True):
            for step in path.split():
                stage, _, amount = step.partition(":")
                move = {"stage": stage} | ({"amount": amount} if amount else {})
                if stage == "lost":
                    move["reason"] = "competitor: chose another vendor"
                moved = await http.post(f"{urls['deals']}/deals/{deal}/stage", json=move)
                assert moved.status_code == 200, moved.text
    # A record qualification cannot read goes to the dead letters.
    await publish_raw(backends.kafka_bootstrap, LeadCaptured.topic(), b"ops-garbage", b"{not json")


async def _arm_a_due_timer(backends: Backends, database: str) -> None:
    """A timer due now in the leads service's database, armed as a use case arms one (through the unit of
    work): the service's timer worker fires it."""
    store = Store(ServiceSettings(**backends.settings(), service_name="leads", mongodb_database=database))
    try:
        units = MongoUnitsOfWork(store, SystemClock(), MongoUnitOfWork)
        now = units.clock.now()
        overdue = LeadResponseOverdue(
            lead_id=unique("L"),
            owner="ana@kariz.test",
            source=LeadSource("web_form"),
            captured_at=now,
            due_at=now,
        )

        async def arm(uow: MongoUnitOfWork) -> None:
            uow.timers.arm(f"lead:{overdue.lead_id}:response", now, overdue)

        await units.run(arm)
    finally:
        await store.close()


async def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=15) as http:
        answer = await http.get(f"{prometheus}/api/v1/query", params={"query": expr})
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "success", f"{expr!r}: {body.get('error')}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def _metric_names(prometheus: str) -> set[str]:
    async with httpx.AsyncClient(timeout=15) as http:
        return set((await http.get(f"{prometheus}/api/v1/label/__name__/values")).json()["data"])


def _dashboard_exprs(group_prefix: str) -> list[tuple[str, str]]:
    exprs = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = (
                    target["expr"]
                    .replace("$__rate_interval", RATE_INTERVAL)
                    .replace("$__range", RANGE)
                    .replace("$group_prefix", group_prefix)
                )
                assert not re.search(r"\$[A-Za-z_{]", expr), f"unknown variable in {expr!r}"
                exprs.append((f"{board['title']} / {panel['title']}", expr))
    return exprs


def _alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


async def _traffic_seen(prometheus: str) -> bool:
    """Prometheus has scraped the effects of all the traffic, the slowest (retries, gauges) included."""
    checks = [
        # As the dashboards read them: increase() counts a step only once the series has a sample before it.
        f'sum(increase(kariz_deals_won_total{{job="kariz"}}[{RANGE}])) >= 2',
        f'sum(increase(kariz_deals_lost_total{{job="kariz"}}[{RANGE}])) >= 1',
        "max(kariz_deals_pipeline_value) > 0",
        'sum(kariz_qualification_decisions_total{outcome="disqualified"}) >= 1',
        "sum(kariz_dead_letters_total) >= 1",
        'sum(kariz_notifications_sent_total{channel="email"}) >= 1',
        'sum(kariz_notifications_gave_up_total{channel="webhook"}) >= 1',
        "count(kafka_consumergroup_lag) >= 1",
        f"count(kariz_timers_pending) >= {len(SERVICES)}",
        'sum(kariz_timers_fired_total{service="leads"}) >= 1',
    ]
    for check in checks:
        if not await _query(prometheus, check):
            return False
    return True


async def test_every_dashboard_expression_parses_names_existing_metrics_and_returns_data(
    observed: Observed,
) -> None:
    await eventually(lambda: _traffic_seen(observed.prometheus), timeout=90, interval=1)
    known = await _metric_names(observed.prometheus)
    exprs = _dashboard_exprs(observed.group_prefix)
    assert len(exprs) > 40, "both dashboards' panels should be found"
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, f"{title}: no metric found in {expr!r}"
        assert names <= known, f"{title}: {sorted(names - known)} not exported by anything scraped"
        assert await _query(observed.prometheus, expr), f"{title}: no data for {expr!r}"


async def test_alert_rules_load_evaluate_and_fire_on_what_the_traffic_broke(observed: Observed) -> None:
    await eventually(lambda: _traffic_seen(observed.prometheus), timeout=90, interval=1)
    known = await _metric_names(observed.prometheus)
    rules = _alert_rules()
    for rule in rules:
        names = metric_names(rule["expr"]) - {"up"}  # `up` is Prometheus's own, per target
        assert names <= known, f"{rule['alert']}: {sorted(names - known)} not exported by anything scraped"
        await _query(observed.prometheus, rule["expr"])

    async def evaluated() -> list[dict[str, Any]] | None:
        async with httpx.AsyncClient(timeout=15) as http:
            groups = (await http.get(f"{observed.prometheus}/api/v1/rules")).json()["data"]["groups"]
        loaded = [rule for group in groups for rule in group["rules"]]
        return loaded if all(r["health"] == "ok" for r in loaded) else None

    loaded = await eventually(evaluated, timeout=30, interval=1)
    assert {r["name"] for r in loaded} == {r["alert"] for r in rules}

    async def alerts(state: str) -> set[str]:
        async with httpx.AsyncClient(timeout=15) as http:
            active = (await http.get(f"{observed.prometheus}/api/v1/alerts")).json()["data"]["alerts"]
        return {a["labels"]["alertname"] for a in active if a["state"] == state}

    expected = {"KarizDeadLetters", "KarizNotificationsGivingUp"}
    try:
        await eventually(lambda: _contains(alerts("firing"), expected), timeout=30, interval=1)
    except AssertionError:
        raise AssertionError(f"expected {expected} to fire; firing: {await alerts('firing')}") from None
    # A healthy stack otherwise: nothing is down, missing, unreachable or stuck. The dead letter may also
    # have started the 5-minute wait of the event error rate (one bad record among a few dozen events).
    assert await alerts("firing") == expected
    assert await alerts("pending") <= {"KarizEventErrorRate"}


async def _contains(names: Awaitable[set[str]], expected: set[str]) -> bool:
    return expected <= await names


def test_promtool_accepts_the_alert_rules() -> None:
    result = subprocess.run(
        [debian_tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alert_rules())} rules found" in result.stdout


def test_the_service_missing_alert_watches_every_service_of_the_registry() -> None:
    [missing] = [rule for rule in _alert_rules() if rule["alert"] == "KarizServiceMissing"]
    watched = re.findall(r'absent\(up\{job="kariz", service="([^"]+)"\}\)', missing["expr"])
    assert sorted(watched) == sorted(SERVICES), "KarizServiceMissing must name each service once"


def _panel_expr(board_title: str, panel_title: str) -> str:
    """A panel's only expression, with Grafana's variables as ``promtool test rules`` evaluates them."""
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        if board["title"] == board_title:
            [panel] = [p for p in board["panels"] if p["title"] == panel_title]
            [target] = panel["targets"]
            return str(target["expr"]).replace("$__rate_interval", "5m")
    raise AssertionError(f"no dashboard {board_title!r}")


def test_timers_behind_fires_after_five_minutes_over_a_minute_and_the_timer_panels_read_per_service(
    tmp_path: Path,
) -> None:
    """`promtool test rules` on synthetic series, a sample a minute. The overdue gauge of leads (both of its
    replicas read the same timers) is above 60 s from minute 2; of qualification from minute 0, but it drops
    below at minute 3; of deals it stays at 60 s, which is not behind."""
    [rule] = [rule for rule in _alert_rules() if rule["alert"] == "KarizTimersBehind"]
    description = rule["annotations"]["description"]
    overdue = "kariz_timers_oldest_overdue_seconds"

    def alerts(*firing: tuple[str, str]) -> list[dict[str, Any]]:
        return [
            {
                "exp_labels": {"severity": "warning", "service": service},
                "exp_annotations": {
                    "summary": f"Kariz {service}: a timer has waited {waited} past its due time",
                    "description": description,
                },
            }
            for service, waited in firing
        ]

    def at(minute: int, *firing: tuple[str, str]) -> dict[str, Any]:
        return {"eval_time": f"{minute}m", "alertname": "KarizTimersBehind", "exp_alerts": alerts(*firing)}

    tests = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": f'{overdue}{{job="kariz", service="leads", instance="a"}}',
                        "values": "0 30 120+60x8",
                    },
                    {
                        "series": f'{overdue}{{job="kariz", service="leads", instance="b"}}',
                        "values": "0 30 120+60x8",
                    },
                    {
                        "series": f'{overdue}{{job="kariz", service="qualification"}}',
                        "values": "90 90 90 10 90x6",
                    },
                    {"series": f'{overdue}{{job="kariz", service="deals"}}', "values": "60x10"},
                    {"series": 'kariz_timers_pending{service="leads", instance="a"}', "values": "5x10"},
                    {"series": 'kariz_timers_pending{service="leads", instance="b"}', "values": "5x10"},
                    {"series": 'kariz_timers_pending{service="deals"}', "values": "0x10"},
                    {
                        "series": 'kariz_timers_fired_total{service="leads", instance="a"}',
                        "values": "0+60x10",
                    },
                    {
                        "series": 'kariz_timers_fired_total{service="leads", instance="b"}',
                        "values": "0+30x10",
                    },
                ],
                "alert_rule_test": [
                    at(6),  # leads has been behind for 4 minutes: pending, not firing
                    at(7, ("leads", "7m 0s")),  # 5 minutes: firing, once for the service, not per replica
                    at(9, ("leads", "9m 0s"), ("qualification", "1m 30s")),  # behind again since minute 4
                    at(10, ("leads", "10m 0s"), ("qualification", "1m 30s")),  # deals at 60 s never fires
                ],
                "promql_expr_test": [
                    {
                        "expr": _panel_expr("Kariz / Service health", "Oldest overdue timer"),
                        "eval_time": "7m",
                        "exp_samples": [
                            {"labels": '{service="leads"}', "value": 420},
                            {"labels": '{service="qualification"}', "value": 90},
                            {"labels": '{service="deals"}', "value": 60},
                        ],
                    },
                    {
                        # Both replicas count the same timers: 5, not 10.
                        "expr": _panel_expr("Kariz / Service health", "Timers pending"),
                        "eval_time": "7m",
                        "exp_samples": [
                            {"labels": '{service="leads"}', "value": 5},
                            {"labels": '{service="deals"}', "value": 0},
                        ],
                    },
                    {
                        # Each replica fires its own: 1/s and 0.5/s.
                        "expr": _panel_expr("Kariz / Service health", "Timers fired per second"),
                        "eval_time": "10m",
                        "exp_samples": [{"labels": '{service="leads"}', "value": 1.5}],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "timers.test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [debian_tool("promtool"), "test", "rules", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_response_sla_breaches_rising_fires_on_a_doubling_not_on_a_steady_rate(tmp_path: Path) -> None:
    """`promtool test rules`: LeadResponseOverdue published at 6 an hour for an hour, then at 30 an hour.
    The last hour goes over 10 and twice the hour before it at about minute 72: pending, then firing 15
    minutes on; once the hour before is as busy (about minute 145) it stops, a steady rate being no rise."""
    [rule] = [rule for rule in _alert_rules() if rule["alert"] == "KarizLeadResponseBreachesRising"]
    published = 'kariz_events_published_total{job="kariz", service="leads", topic="%s"}'

    def at(minute: int, firing: bool) -> dict[str, Any]:
        alerts = [{"exp_labels": {"severity": "warning"}, "exp_annotations": rule["annotations"]}]
        return {
            "eval_time": f"{minute}m",
            "alertname": "KarizLeadResponseBreachesRising",
            "exp_alerts": alerts if firing else [],
        }

    tests = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": published % LeadResponseOverdue.topic(), "values": "0+0.1x60 6.5+0.5x119"},
                    # Other topics do not count.
                    {"series": published % LeadCaptured.topic(), "values": "0+100x180"},
                ],
                "alert_rule_test": [at(60, False), at(80, False), at(110, True), at(170, False)],
            }
        ],
    }
    path = tmp_path / "breaches.test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [debian_tool("promtool"), "test", "rules", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_deals_stalling_fires_when_a_stage_holds_more_than_ten_stalled_deals_for_half_an_hour(
    tmp_path: Path,
) -> None:
    """`promtool test rules`: two replicas report the stalled deals of proposal (max, not sum, across
    them): 6 for an hour (12 summed, no alert), then 14: pending, firing 30 minutes on; another stage's
    deals do not count towards it."""
    [rule] = [rule for rule in _alert_rules() if rule["alert"] == "KarizDealsStalling"]
    gauge = 'kariz_deals_stalled{job="kariz", service="deals", instance="%s", pipeline="default", stage="%s"}'

    def at(minute: int, firing: bool) -> dict[str, Any]:
        labels = {"severity": "warning", "pipeline": "default", "stage": "proposal"}
        annotations = {
            "summary": "14 deals sit stalled in default / proposal",
            "description": rule["annotations"]["description"],
        }
        alerts = [{"exp_labels": labels, "exp_annotations": annotations}]
        return {
            "eval_time": f"{minute}m",
            "alertname": "KarizDealsStalling",
            "exp_alerts": alerts if firing else [],
        }

    tests = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": gauge % ("a", "proposal"), "values": "6x60 14x60"},
                    {"series": gauge % ("b", "proposal"), "values": "6x60 14x60"},
                    {"series": gauge % ("a", "demo"), "values": "3x120"},
                ],
                "alert_rule_test": [at(59, False), at(75, False), at(95, True)],
            }
        ],
    }
    path = tmp_path / "stalling.test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [debian_tool("promtool"), "test", "rules", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
