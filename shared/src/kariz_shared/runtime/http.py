"""HTTP adapter pieces every service uses: error bodies, correlation ids, request metrics, pages."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Generic, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.errors import ConnectionFailure, PyMongoError
from starlette.responses import Response

from kariz_shared.contracts.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    RuleViolation,
    Unauthenticated,
    Unavailable,
)
from kariz_shared.runtime.logging import correlation_id
from kariz_shared.runtime.metrics import http_request_seconds, http_requests

T = TypeVar("T")

CORRELATION_HEADER = "X-Correlation-Id"


# The paging parameters of every list endpoint; the answer is a Page.
Limit = Annotated[int, Query(ge=1, le=200, description="Page size, 1..200")]
Offset = Annotated[int, Query(ge=0, description="Items to skip")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def error_body(error: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": error, "message": message, **extra}


def install(app: FastAPI, service: str) -> None:
    """Error handlers and middleware: every error answers ``{"error", "message", ...}``."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {
                "field": ".".join(str(p) for p in err["loc"] if p not in ("body", "query", "path")) or "body",
                "message": err["msg"],
            }
            for err in exc.errors()
        ]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return JSONResponse(
            status_code=422,
            content=error_body("invalid_request", f"invalid request: {summary}", fields=fields),
        )

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        status, kind = 400, "bad_request"
        if isinstance(exc, Unauthenticated):
            return JSONResponse(
                status_code=401,
                content=error_body("unauthenticated", str(exc)),
                headers={"WWW-Authenticate": 'Bearer realm="kariz"'},
            )
        if isinstance(exc, Unavailable):
            return JSONResponse(
                status_code=503, content=error_body("unavailable", str(exc)), headers={"Retry-After": "5"}
            )
        if isinstance(exc, Forbidden):
            status, kind = 403, "forbidden"
        elif isinstance(exc, NotFound):
            status, kind = 404, "not_found"
        elif isinstance(exc, Conflict):
            status, kind = 409, "conflict"
        elif isinstance(exc, RuleViolation):
            status, kind = 422, "rule_violation"
        return JSONResponse(status_code=status, content=error_body(kind, str(exc)))

    @app.exception_handler(PyMongoError)
    async def database_error(_: Request, exc: PyMongoError) -> JSONResponse:
        if isinstance(exc, ConnectionFailure) or exc.timeout:
            # Nothing was written: the transaction did not commit (Store.transaction bounds its retries).
            return JSONResponse(
                status_code=503,
                content=error_body(
                    "unavailable", "the database is unreachable; nothing was changed, try again"
                ),
                headers={"Retry-After": "5"},
            )
        raise exc

    @app.middleware("http")
    async def correlation_and_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        cid = request.headers.get(CORRELATION_HEADER) or str(uuid.uuid4())
        token = correlation_id.set(cid)
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers[CORRELATION_HEADER] = cid
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", "unmatched")
            http_requests.labels(service, request.method, template, str(status)).inc()
            http_request_seconds.labels(service, request.method, template).observe(
                time.perf_counter() - started
            )
            correlation_id.reset(token)
