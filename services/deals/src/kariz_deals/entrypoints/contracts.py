"""A deal's contract over HTTP: the signature request and its status, recorded by a person
(``PUT /deals/{id}/contract``) or by the e-sign provider (``POST /webhooks/e-sign``).

The webhook is the one route besides health and metrics without a bearer token: the provider signs the
request's body with the shared secret (``KARIZ_E_SIGN_WEBHOOK_SECRET``), HMAC-SHA256, hex, in
``X-E-Sign-Signature`` (``sha256=<hex>``, or the bare hex); the signature is its credential. It is
checked over the bytes received, before anything is parsed, in constant time (``hmac.compare_digest``).
No secret configured: nothing is accepted.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, ValidationError

from kariz_deals.domain.contract import Contract, ContractStatus
from kariz_deals.service_layer import contracts
from kariz_deals.service_layer.contracts import RecordContract
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.errors import Unauthenticated
from kariz_shared.contracts.identity import PEOPLE
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate

SIGNATURE_HEADER = "X-E-Sign-Signature"
#: A webhook body is a few hundred bytes; anything much larger is not the provider's.
WEBHOOK_MAX_BYTES = 64 * 1024


def e_sign_signature(secret: str, body: bytes) -> str:
    """The signature the provider sends with ``body``: ``sha256=`` and the HMAC-SHA256 hex digest."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_by(secret: SecretStr, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` is the provider's for ``body`` under ``secret`` (never with no secret)."""
    key = secret.get_secret_value()
    if not key or not signature:
        return False
    given = signature.strip()
    given = given if given.startswith("sha256=") else f"sha256={given}"
    return hmac.compare_digest(e_sign_signature(key, body).encode(), given.encode())


class ContractRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    request_id: str = Field(min_length=1, max_length=200, description="The signature request's id")
    status: ContractStatus
    provider: str | None = Field(default=None, max_length=100, examples=["docusign"])
    document_url: str | None = Field(default=None, max_length=2000)


class ESignCallback(BaseModel):
    """What the provider posts (a neutral shape: a provider's own is mapped to it by its connector)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    deal_id: str = Field(min_length=1, max_length=200)
    request_id: str = Field(min_length=1, max_length=200)
    # A literal rather than the enum: the route's schema is written inline (the body is read raw, to
    # check its signature), where a reference to a shared enum would not resolve.
    status: Literal["sent", "viewed", "signed", "declined"]
    provider: str = Field(min_length=1, max_length=100)
    occurred_at: AwareDatetime | None = None
    document_url: str | None = Field(default=None, max_length=2000)


class ContractEventView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    status: str
    at: datetime
    by: str | None
    request_id: str


class ContractView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    deal_id: str
    request_id: str
    status: str
    provider: str | None
    document_url: str | None
    updated_at: datetime
    history: list[ContractEventView]

    @classmethod
    def of(cls, contract: Contract) -> ContractView:
        return cls.model_validate(contract)


ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": "No such deal"},
    409: {"description": "The contract is signed, or the status cannot follow the recorded one"},
    422: {"description": "An invalid body"},
}


def router(units: UnitsOfWork[DealsUnitOfWork]) -> APIRouter:
    """``PUT /deals/{id}/contract``, signed in: whoever sees the deal."""
    api = APIRouter(tags=["contracts"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @api.put(
        "/deals/{deal_id}/contract",
        summary="Record the deal's signature request and its status",
        responses=ERRORS,
    )
    async def put_contract(deal_id: str, body: ContractRequest, caller: Authenticated) -> ContractView:
        caller.require(*PEOPLE)
        command = RecordContract(
            deal_id=deal_id,
            request_id=body.request_id,
            status=body.status,
            by=caller.actor,
            provider=body.provider,
            document_url=body.document_url,
            seen=caller.seen,
        )
        return ContractView.of(await contracts.record_contract(units, command))

    return api


def webhook_router(units: UnitsOfWork[DealsUnitOfWork], secret: SecretStr) -> APIRouter:
    """``POST /webhooks/e-sign``: no bearer token; the body's HMAC under ``secret`` is the credential."""
    api = APIRouter(tags=["contracts"])

    @api.post(
        "/webhooks/e-sign",
        summary="The e-sign provider's status callback (HMAC-SHA256 signed body, no token)",
        responses={
            401: {"description": "No signature, or not the provider's"},
            **ERRORS,
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ESignCallback.model_json_schema()}},
            }
        },
    )
    async def e_sign_callback(
        request: Request,
        signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER, max_length=200)] = None,
    ) -> ContractView:
        body = await request.body()
        if len(body) > WEBHOOK_MAX_BYTES or not signed_by(secret, body, signature):
            raise Unauthenticated(f"the body's {SIGNATURE_HEADER} is missing or is not the e-sign provider's")
        try:
            callback = ESignCallback.model_validate_json(body)
        except ValidationError as exc:
            # Answered as any invalid body is: 422 naming the field.
            raise RequestValidationError(
                [
                    {**e, "loc": ("body", *e["loc"])}
                    for e in exc.errors(include_url=False, include_context=False)
                ]
            ) from exc
        command = RecordContract(
            deal_id=callback.deal_id,
            request_id=callback.request_id,
            status=ContractStatus(callback.status),
            by=f"e-sign:{callback.provider}",
            provider=callback.provider,
            document_url=callback.document_url,
            occurred_at=callback.occurred_at,
        )
        return ContractView.of(await contracts.record_contract(units, command))

    return api
