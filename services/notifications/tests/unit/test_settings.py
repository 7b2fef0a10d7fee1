"""Settings from the environment: lists as JSON or comma-separated, subscribers checked up front."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from kariz_notifications.domain.model import Subscriber
from kariz_notifications.settings import NotificationsSettings

SECRET = "finance-secret-of-at-least-32-bytes"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TEAM_EMAILS", "HANDOVER_EMAILS", "WEBHOOK_SUBSCRIBERS", "SMTP_PORT", "HTTP_PORT"):
        monkeypatch.delenv(f"KARIZ_{name}", raising=False)
    monkeypatch.delenv("KARIZ_DELIVERY_CONCURRENCY", raising=False)
    s = NotificationsSettings()
    assert (s.service_name, s.http_port, s.database_name) == ("notifications", 8004, "kariz_notifications")
    assert (s.smtp_host, s.smtp_port, s.smtp_sender) == ("127.0.0.1", 8025, "kariz@kariz.example")
    assert s.team_emails == ["sales-team@kariz.example"]
    assert s.handover_emails == ["onboarding@kariz.example"]
    assert s.webhook_subscribers == []
    assert (s.delivery_max_attempts, s.delivery_backoff_s, s.delivery_poll_interval_s) == (6, 1.0, 0.2)
    assert (s.delivery_concurrency, s.smtp_timeout_s, s.webhook_timeout_s) == (4, 10.0, 10.0)


def test_lists_from_the_environment_as_json_or_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARIZ_TEAM_EMAILS", " a@kariz.test, b@kariz.test ,")
    monkeypatch.setenv("KARIZ_HANDOVER_EMAILS", '["onboarding@kariz.test", "support@kariz.test"]')
    monkeypatch.setenv(
        "KARIZ_WEBHOOK_SUBSCRIBERS",
        json.dumps(
            [{"name": "finance", "url": "https://fin.example/h", "secret": SECRET, "events": ["DealWon"]}]
        ),
    )
    s = NotificationsSettings()
    assert s.team_emails == ["a@kariz.test", "b@kariz.test"]
    assert s.handover_emails == ["onboarding@kariz.test", "support@kariz.test"]
    assert s.subscriber_secret("finance") == SECRET
    assert s.subscriber_secret("nobody") is None
    assert SECRET not in repr(s)
    audience = s.audience()
    assert audience.team == ("a@kariz.test", "b@kariz.test")
    assert audience.subscribers == (Subscriber("finance", "https://fin.example/h", frozenset({"DealWon"})),)


def hook(**changes: object) -> dict[str, object]:
    return {
        "name": "finance",
        "url": "https://fin.example/h",
        "secret": SECRET,
        "events": ["DealWon"],
        **changes,
    }


@pytest.mark.parametrize(
    ("subscribers", "message"),
    [
        ([hook(events=["DealSigned"])], "unknown events ['DealSigned']"),
        ([hook(events=["RepProfile"])], "unknown events ['RepProfile']"),
        ([hook(events=[])], "at least 1 item"),
        ([hook(url="ftp://fin.example/h")], "not an http(s) URL"),
        ([hook(name="has space")], "should match pattern"),
        ([hook(secret="")], "webhook_subscribers.0.secret"),
        ([hook(secret="short-but-not-32")], "at least 32 bytes"),
        ([hook(previous_secret="short")], "webhook_subscribers.0.previous_secret"),
        ([hook(url="http://fin.example/h")], "the url must be https"),
        ([hook(), hook(url="https://other.example/")], "names must be unique: finance"),
        ([hook(colour="red")], "Extra inputs are not permitted"),
    ],
)
def test_bad_subscribers_are_refused_at_start(subscribers: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        NotificationsSettings(webhook_subscribers=subscribers)


def test_http_is_allowed_only_where_asked_for_and_a_rotation_signs_with_both_secrets() -> None:
    s = NotificationsSettings(
        webhook_subscribers=[hook(url="http://127.0.0.1:9/h", previous_secret="p" * 32)],
        webhook_allow_http=True,
    )
    assert s.subscriber_secrets("finance") == [SECRET, "p" * 32]
    assert s.subscriber_secrets("nobody") is None


def test_star_subscribes_to_everything() -> None:
    s = NotificationsSettings(webhook_subscribers=[hook(events=["*"])])
    [sub] = s.audience().subscribers
    assert all(sub.wants(name) for name in ("LeadQualified", "StageChanged", "DealWon", "DealLost"))


@pytest.mark.parametrize("field", ["team_emails", "handover_emails"])
def test_addresses_must_be_addresses(field: str) -> None:
    with pytest.raises(ValidationError, match="not e-mail addresses: sales team"):
        NotificationsSettings(**{field: "ok@kariz.test, sales team"})


@pytest.mark.parametrize(
    ("field", "value"),
    [("delivery_max_attempts", 0), ("delivery_backoff_s", 0), ("smtp_timeout_s", 60), ("smtp_port", 0)],
)
def test_numbers_out_of_range_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        NotificationsSettings(**{field: value})


def test_the_smtp_deadline_must_end_before_the_delivery_lease() -> None:
    assert NotificationsSettings().smtp_deadline_s < NotificationsSettings().delivery_lease_s
    with pytest.raises(ValidationError, match=re.escape("smtp_deadline_s (30.0) must be shorter than")):
        NotificationsSettings(smtp_deadline_s=30, delivery_lease_s=30)
    assert NotificationsSettings(smtp_deadline_s=50, delivery_lease_s=60).smtp_deadline_s == 50


def test_smtp_defaults_are_the_dev_sinks_plaintext_without_login() -> None:
    s = NotificationsSettings()
    assert (s.smtp_tls_mode, s.smtp_username, s.smtp_tls_ca_file) == ("none", "", "")


def test_smtp_login_needs_tls_and_a_password_which_may_come_from_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="AUTH would send the password in the clear"):
        NotificationsSettings(smtp_username="kariz", smtp_password="pw")
    with pytest.raises(ValidationError, match="KARIZ_SMTP_USERNAME is set without KARIZ_SMTP_PASSWORD"):
        NotificationsSettings(smtp_username="kariz", smtp_tls_mode="starttls")
    with pytest.raises(
        ValidationError, match="KARIZ_SMTP_TLS_CA_FILE is set, but KARIZ_SMTP_TLS_MODE is none"
    ):
        NotificationsSettings(smtp_tls_ca_file="/etc/ssl/ca.pem")
    secret = tmp_path / "password"
    secret.write_text("from-the-file\n")
    s = NotificationsSettings(smtp_username="kariz", smtp_tls_mode="starttls", smtp_password_file=str(secret))
    assert s.smtp_password.get_secret_value() == "from-the-file"
    assert "from-the-file" not in repr(s)
    with pytest.raises(ValidationError, match="not both"):
        NotificationsSettings(
            smtp_username="kariz",
            smtp_tls_mode="starttls",
            smtp_password="other",
            smtp_password_file=str(secret),
        )
