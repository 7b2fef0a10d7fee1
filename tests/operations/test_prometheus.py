"""The dashboards and alert rules, checked against a real Prometheus scraping the four services.

The four services run as processes on the embedded broker and database (as in tests/e2e) and get sales
traffic over their HTTP APIs: leads captured from several sources, a duplicate, bad requests, a BANT
call, deals moved to won and to lost, a record qualification cannot read (a dead letter), and webhooks to
a subscriber that is down (failed deliveries). Prometheus (Debian's package; `make prometheus`) scrapes
them every second with the alert rules loaded. Then every PromQL expression of both dashboards and of the
rules is evaluated through Prometheus's HTTP API: it must parse, every metric it names must exist, and
every dashboard expression must return data. The rules must load and evaluate without error, and the
alerts this traffic should raise (dead letters, deliveries given up) are firing while the others are not.
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
from kariz_devkit.testing import Backends, eventually, publish_raw, unique
from kariz_devkit.testing.operations import ConsumerLagExporter, debian_tool, metric_names
from kariz_shared.contracts.events import LeadCaptured

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
SERVICES = ("leads", "qualification", "deals", "notifications")
# What Grafana puts in place of its variables; the test prefix stands in for the production "kariz".
RATE_INTERVAL = "30s"
RANGE = "10m"


@dataclass
class Observed:
    prometheus: str
    group_prefix: str
    logs: Path


class Inbox:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


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
    backends: Backends, smtp_port: int, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Observed]:
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
        # A subscriber that is down: its deliveries fail, are retried, and are given up.
        "KARIZ_WEBHOOK_SUBSCRIBERS": json.dumps(
            [{"name": "down", "url": f"http://127.0.0.1:{free_port()}/hook", "secret": "s", "events": ["*"]}]
        ),
    }
    processes: list[ServiceProcess] = []
    prometheus: ChildProcess | None = None
    try:
        for name in SERVICES:
            env = {**common, "KARIZ_MONGODB_DATABASE": unique(f"ops_{name}")}
            processes.append(start_service(name, free_port(), env, work / "logs"))
        lag = ConsumerLagExporter(backends.kafka_bootstrap, group_prefix, free_port())
        config = work / "prometheus.yml"
        config.write_text(yaml.safe_dump(_prometheus_config({p.name: p.port for p in processes}, lag.port)))
        port = free_port()
        prometheus = await asyncio.to_thread(_start_prometheus, config, work, port)
        await wait_ready(processes)
        async with lag.serving():
            urls = {p.name: p.url for p in processes}
            await _sales_traffic(urls, backends)
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
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port("127.0.0.1", port, 60, process)
    return ChildProcess("prometheus", process, log)


async def _sales_traffic(urls: dict[str, str], backends: Backends) -> None:
    async with httpx.AsyncClient(timeout=15) as http:

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

        await eventually(nurtured, timeout=60)
        bant = {"budget": "confirmed", "authority": "decision_maker", "need": "none", "timeline": "later"}
        response = await http.put(f"{urls['qualification']}/leads/{middling}/bant", json=bant)
        assert response.status_code == 200, response.text

        async def deal_of(lead_id: str) -> str | None:
            page = (await http.get(f"{urls['deals']}/deals", params={"lead_id": lead_id})).json()
            return page["items"][0]["id"] if page["items"] else None

        deals = [await eventually(lambda lead=lead: deal_of(lead), timeout=60) for lead in strong]
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
