"""The API's request body and the service wiring, without servers."""

from decimal import Decimal

import pytest
from pydantic import ValidationError

from kariz_deals.bootstrap import build
from kariz_deals.entrypoints.http import StageMoveRequest
from kariz_deals.settings import DealsSettings
from kariz_shared.runtime.clock import FakeClock


def test_a_valid_body() -> None:
    body = StageMoveRequest.model_validate({"stage": " proposal ", "amount": "1250.50", "note": "sent"})
    assert (body.stage, body.amount, body.note, body.reason) == ("proposal", Decimal("1250.50"), "sent", None)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "stage"),
        ({"stage": ""}, "stage"),
        ({"stage": "proposal", "amount": 0}, "amount"),
        ({"stage": "proposal", "amount": "-10"}, "amount"),
        ({"stage": "proposal", "amount": "10.555"}, "amount"),
        ({"stage": "proposal", "amount": "NaN"}, "amount"),
        ({"stage": "proposal", "amount": "lots"}, "amount"),
        ({"stage": "lost", "reason": "x" * 501}, "reason"),
        ({"stage": "demo", "colour": "red"}, "colour"),
    ],
)
def test_invalid_bodies_name_the_field(payload: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        StageMoveRequest.model_validate(payload)
    assert field in {str(err["loc"][0]) for err in exc.value.errors()}


def test_settings_defaults() -> None:
    settings = DealsSettings()
    assert (settings.service_name, settings.http_port, settings.deal_currency) == ("deals", 8003, "EUR")
    assert settings.database_name == "kariz_deals"


def test_build_wires_routes_consumer_and_publishers_without_io() -> None:
    service = build(DealsSettings())
    paths = set(service.api.openapi()["paths"])
    assert {
        "/deals",
        "/deals/{deal_id}",
        "/deals/{deal_id}/stage",
        "/accounts/{account_id}",
        "/pipeline",
        "/pipeline/stages",
        "/pipelines",
        "/pipelines/{name}",
        "/pipelines/{name}/versions",
        "/healthz",
        "/products/{sku}",
        "/price-books/{name}",
        "/deals/{deal_id}/quotes",
        "/deals/{deal_id}/quotes/{number}/document",
        "/deals/{deal_id}/contract",
        "/webhooks/e-sign",
    } <= paths
    assert "patch" in service.api.openapi()["paths"]["/deals/{deal_id}"]
    assert {"/deals/{deal_id}/objections", "/objection-answers"} <= paths
    assert [cls.__name__ for cls in service.consumes] == [
        "LeadQualified",
        "LeadsMerged",
        "ActivityLogged",
        "QuoteExpired",
        "DealWon",
        "DealLost",
    ]
    assert [cls.__name__ for cls in service.publishes] == [
        "DealOpened",
        "StageChanged",
        "DealWon",
        "DealLost",
        "DealUpdated",
        "DealStalled",
        "RfpResponseDue",
        "QuoteApprovalRequested",
        "QuoteSent",
        "QuoteAccepted",
        "QuoteExpired",
        "ObjectionRecorded",
    ]
    assert "post" in service.api.openapi()["paths"]["/deals"]
    assert "/deals/{deal_id}/rfp-decision" in paths
    # The e-sign webhook is the one route besides health and metrics that takes no bearer token.
    webhook = service.api.openapi()["paths"]["/webhooks/e-sign"]["post"]
    assert "security" not in webhook and "401" in webhook["responses"]


def test_build_takes_the_clock_it_is_given() -> None:
    clock = FakeClock()
    assert build(DealsSettings(), clock=clock).clock is clock
