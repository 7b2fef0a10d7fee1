"""HTTP adapter pieces every service uses: error bodies, correlation ids, request metrics, pages."""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Generic, TypeVar

from fastapi import FastAPI, Path, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field
from pymongo.errors import ConnectionFailure, PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kariz_shared.contracts.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    RuleViolation,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)
from kariz_shared.contracts.paging import CURSOR_MAX_CHARS, Cursor
from kariz_shared.runtime.logging import correlation_id
from kariz_shared.runtime.metrics import http_request_seconds, http_requests

T = TypeVar("T")

CORRELATION_HEADER = "X-Correlation-Id"


# The paging parameters of every list endpoint; the answer is a Page.
Limit = Annotated[int, Query(ge=1, le=200, description="Page size, 1..200")]
# Bounded so no value overflows the database's 64-bit integers (an unbounded offset answered 500).
OFFSET_MAX = 1_000_000_000
Offset = Annotated[int, Query(ge=0, le=OFFSET_MAX, description=f"Items to skip, 0..{OFFSET_MAX}")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def _a_cursor(value: str | None) -> str | None:
    if value is not None:
        Cursor.decode(value)  # InvalidValue is a ValueError: 422 naming the parameter
    return value


# Keyset paging beside the offset (kariz_shared.contracts.paging): the route decodes it with Cursor.decode.
CursorParam = Annotated[
    str | None,
    AfterValidator(_a_cursor),
    Query(
        max_length=CURSOR_MAX_CHARS,
        description="The previous page's next_cursor: the page after it, in constant time however deep "
        "(not with an offset)",
    ),
]


# Versioned configuration (kariz_shared.contracts.versions): a version's ETag is its number, quoted; an
# edit names the version it edited in If-Match ("3", W/"3" or 3), or * for whatever is in force.
IF_MATCH = r'^(\*|(W/)?"[0-9]{1,9}"|[0-9]{1,9})$'
#: Version numbers as a path takes them: bounded, so none overflows the database's integers.
VersionNumber = Annotated[int, Path(ge=0, le=999_999_999, description="The version's number")]


def version_etag(number: int) -> str:
    """The ``ETag`` of a configuration's version: its number, quoted."""
    return f'"{number}"'


def edited_version(if_match: str | None) -> int | None:
    """The version an ``If-Match`` header names (already checked against :data:`IF_MATCH`); None for
    none or ``*`` (any version in force)."""
    digits = re.sub(r"[^0-9]", "", if_match or "")
    return int(digits) if digits else None


class CursorPage(BaseModel, Generic[T]):
    """A page that can be followed by cursor: ``next_cursor`` reads the page after it (None: the last)."""

    items: list[T]
    total: int | None = Field(
        description="How many match in all; null on a page read by cursor, which counts nothing"
    )
    limit: int
    offset: int
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page")


def error_body(error: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": error, "message": message, **extra}


#: A request body larger than this is refused with 413 before it is read whole (an import of 1,000 leads
#: is about 400 KiB).
BODY_MAX_BYTES = 2 * 1024 * 1024
#: A correlation id a caller sends is copied into logs, events and e-mails: printable and short.
CORRELATION_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
#: The methods the request metrics name; anything else is counted as "other" (bounded label values).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class BodyLimit:
    """Refuses a body over ``max_bytes`` with 413: by its Content-Length at once, or while it streams.

    ``allowances`` gives named paths a limit of their own (an upload route), by exact path; a service
    sets them with :func:`allow_body`, one middleware for every route."""

    def __init__(
        self, app: ASGIApp, max_bytes: int = BODY_MAX_BYTES, allowances: Mapping[str, int] | None = None
    ) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.allowances = allowances if allowances is not None else {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.allowances.get(scope["path"], self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self.too_large(limit)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI passes an HTTPException raised while it reads the body on to its handler.
                    raise StarletteHTTPException(413, self.message(limit))
            return message

        await self.app(scope, counted, send)

    def message(self, limit: int | None = None) -> str:
        return f"the request body is over {limit or self.max_bytes} bytes; nothing was read or stored"

    def too_large(self, limit: int | None = None) -> JSONResponse:
        return JSONResponse(status_code=413, content=error_body("too_large", self.message(limit)))


def allow_body(app: FastAPI, path: str, max_bytes: int) -> None:
    """Let requests to ``path`` (exactly) carry bodies up to ``max_bytes`` instead of
    :data:`BODY_MAX_BYTES`: for an upload route. Call it before the app serves."""
    app.state.body_allowances[path] = max_bytes


def install(app: FastAPI, service: str) -> None:
    """Error handlers and middleware: every error answers ``{"error", "message", ...}``."""

    app.state.body_allowances = {}
    app.add_middleware(BodyLimit, allowances=app.state.body_allowances)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 413:
            return JSONResponse(status_code=413, content=error_body("too_large", str(exc.detail)))
        return await http_exception_handler(request, exc)

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
        if isinstance(exc, TooManyRequests):
            return JSONResponse(
                status_code=429,
                content=error_body("too_many_requests", str(exc)),
                headers={"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))},
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
        sent = request.headers.get(CORRELATION_HEADER)
        if sent is not None and not CORRELATION_ID.match(sent):
            return JSONResponse(
                status_code=400,
                content=error_body(
                    "invalid_request",
                    f"{CORRELATION_HEADER}: 1 to 128 printable characters without spaces; nothing was done",
                ),
            )
        cid = sent or str(uuid.uuid4())
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
            method = request.method if request.method in METHODS else "other"
            http_requests.labels(service, method, template, str(status)).inc()
            http_request_seconds.labels(service, method, template).observe(time.perf_counter() - started)
            correlation_id.reset(token)
