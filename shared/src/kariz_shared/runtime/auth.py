"""Sign-in: every API route but health, readiness and metrics needs ``Authorization: Bearer <JWT>``.

A token is accepted when its signature verifies against the issuer's published keys (the JWKS, fetched
and cached by PyJWT's ``PyJWKClient``, fetched again when a token names a key it has not seen, so a
rotated key is followed), its ``iss`` is the configured issuer, its ``aud`` names the configured audience,
and ``exp``/``nbf`` hold within a small leeway. RS256 and ES256 only. The claims that carry the subject,
the roles and the team are settings, so the same code runs against Keycloak, Entra ID, Okta or the dev
stack's local issuer (README, "Signing in").

With no issuer configured nothing is accepted: there is no switch that turns authentication off.
"""

from __future__ import annotations

import asyncio
import json
import math
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, Protocol

import jwt
from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from kariz_shared.contracts.errors import TooManyRequests, Unauthenticated, Unavailable
from kariz_shared.contracts.events import LeadSource
from kariz_shared.contracts.identity import Caller, Role, Roster, Scope, Teams
from kariz_shared.runtime.clock import Clock
from kariz_shared.runtime.logging import actor as current_actor
from kariz_shared.runtime.logging import on_behalf_of as current_on_behalf_of
from kariz_shared.runtime.settings import ServiceSettings

ALGORITHMS = ("RS256", "ES256")


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted claim path (``realm_access.roles`` for Keycloak), or None."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


class TokenVerifier:
    """Checks bearer tokens against one issuer and makes the request's :class:`Caller`."""

    def __init__(self, settings: ServiceSettings, roster: Teams | None = None) -> None:
        self.issuer = settings.auth_issuer.rstrip("/")
        self.audience = settings.auth_audience
        self.leeway_s = settings.auth_leeway_s
        self.subject_claim = settings.auth_subject_claim
        self.roles_claim = settings.auth_roles_claim
        self.team_claim = settings.auth_team_claim
        # A service passes its live roster (read from kariz.reps.v1), so a manager's team is what the
        # roster says at each request; without one, KARIZ_TEAMS as configured.
        self.roster: Teams = roster if roster is not None else Roster.of(settings.teams)
        self._jwks_url = settings.auth_jwks_url
        self._jwks_cache_s = settings.auth_jwks_cache_s
        self._jwks_refetch_s = settings.auth_jwks_refetch_s
        self._client: jwt.PyJWKClient | None = None

    def _keys(self) -> jwt.PyJWKClient:
        if self._client is None:
            url = self._jwks_url or self._discover_jwks_url()
            # lifespan: the key set is read again after this long; an unknown kid reads it at once.
            self._client = jwt.PyJWKClient(
                url, lifespan=self._jwks_cache_s, timeout=5, cooldown_duration=self._jwks_refetch_s
            )
        return self._client

    def _discover_jwks_url(self) -> str:
        """The issuer's ``jwks_uri``, from its OpenID Connect discovery document."""
        with urllib.request.urlopen(f"{self.issuer}/.well-known/openid-configuration", timeout=5) as answer:
            document = json.load(answer)
        return str(document["jwks_uri"])

    def _signing_key(self, token: str) -> jwt.PyJWK:
        return self._keys().get_signing_key_from_jwt(token)

    async def caller(self, token: str) -> Caller:
        if not self.issuer:
            raise Unauthenticated(
                "sign-in is not configured on this service (KARIZ_AUTH_ISSUER): no token can be checked"
            )
        try:
            key = await asyncio.to_thread(self._signing_key, token)
        except jwt.PyJWKClientConnectionError as exc:
            raise Unavailable(f"the identity provider's keys cannot be read: {exc}") from exc
        except OSError as exc:  # the discovery document
            raise Unavailable(f"the identity provider cannot be reached: {exc}") from exc
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
            raise Unauthenticated(f"the token does not verify: {exc}") from exc
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the token has expired: sign in again") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated(f"the token is not for this audience ({self.audience})") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated(f"the token is not from the issuer {self.issuer}") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token does not verify: {exc}") from exc
        return self.caller_of(claims)

    def caller_of(self, claims: Mapping[str, Any]) -> Caller:
        subject = claim(claims, self.subject_claim)
        if not isinstance(subject, str) or not subject.strip():
            raise Unauthenticated(f"the token has no subject in its {self.subject_claim!r} claim")
        named = claim(claims, self.roles_claim)
        names = [named] if isinstance(named, str) else named if isinstance(named, list) else []
        roles = frozenset(Role(n) for n in names if n in Role.__members__.values())
        team = claim(claims, self.team_claim)
        return Caller.signed_in(subject, roles, team if isinstance(team, str) else None, self.roster)


# --- API keys (machines) ---------------------------------------------------------------------------


class KeyRequest(BaseModel):
    """What an admin asks for: a named key with scopes, optionally bound to one source and campaign."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100, examples=["website contact form"])
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    source: LeadSource | None = Field(default=None, description="Leads it captures come from this source")
    campaign: str | None = Field(default=None, max_length=200)
    on_behalf_of: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Whom the machine acts for (a partner, a team, the form's owner), as its changes and "
        "events record it; the issuing admin when absent",
        examples=["partner:acme-resellers"],
    )


class KeyView(BaseModel):
    id: str
    name: str
    scopes: list[str]
    source: str | None
    campaign: str | None
    on_behalf_of: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    revoked_by: str | None


class IssuedKey(KeyView):
    key: str = Field(description="The secret, shown this once; send it as X-Api-Key")


class ApiKeys(Protocol):
    """Where a service keeps its machines' keys (``kariz_shared.persistence.api_keys``)."""

    async def issue(self, request: KeyRequest, *, by: str, at: datetime) -> IssuedKey: ...

    async def caller(self, secret: str) -> Caller | None: ...

    async def revoke(self, key_id: str, *, by: str, at: datetime) -> KeyView: ...

    async def listing(self) -> list[KeyView]: ...


_api_key = APIKeyHeader(
    name="X-Api-Key",
    auto_error=False,
    description="A machine's key (web form, partner feed), issued by an admin",
)

_bearer = HTTPBearer(
    auto_error=False,
    description="A token from the organisation's identity provider (OIDC); `kariz-dev token` in dev",
)


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Caller:
    """The FastAPI dependency every service router carries: the verified caller, or 401."""
    if credentials is not None:
        verifier: TokenVerifier = request.app.state.verifier
        caller = await verifier.caller(credentials.credentials)
    elif api_key:
        keys: ApiKeys | None = getattr(request.app.state, "api_keys", None)
        known = await keys.caller(api_key) if keys is not None else None
        if known is None:
            raise Unauthenticated("the API key is not one of this service's, or it was revoked")
        caller = known
    else:
        raise Unauthenticated("this needs a credential: send Authorization: Bearer <token> (or X-Api-Key)")
    # The changes this request makes, and their events (``ce_actor``) and log lines, name the caller.
    current_actor.set(caller.actor)
    current_on_behalf_of.set(caller.on_behalf_of)
    return caller


#: What every signed-in route may answer besides its own codes (its OpenAPI ``responses``).
SIGN_IN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No credential, or a token that is expired, forged or for another audience"},
    403: {"description": "The caller's role may not do this"},
    503: {"description": "The identity provider's keys cannot be read now; nothing was changed"},
}

#: A route's parameter for the verified caller (``caller: Authenticated``).
Authenticated = Annotated[Caller, Depends(authenticate)]


def requiring(*roles: Role) -> Callable[[Caller], Awaitable[Caller]]:
    """A dependency for a router (or route) only callers with one of ``roles`` may use (403 otherwise)."""

    async def allowed(caller: Authenticated) -> Caller:
        caller.require(*roles)
        return caller

    return allowed


class RateLimits(Protocol):
    per_minute: int

    async def take(self, bucket: str) -> float | None: ...


async def rate_limited(request: Request, caller: Authenticated) -> None:
    """A route dependency: one more request of this caller (an API key or a person) and of this client
    address; 429 with Retry-After past either limit (``KARIZ_RATE_LIMIT_PER_MINUTE``)."""
    limits: RateLimits | None = getattr(request.app.state, "rate_limits", None)
    if limits is None:
        return
    address = request.client.host if request.client else "unknown"
    for bucket in (f"caller:{caller.actor}", f"address:{address}"):
        wait = await limits.take(bucket)
        if wait is not None:
            raise TooManyRequests(
                f"too many requests from {bucket.partition(':')[2]}: the limit is "
                f"{limits.per_minute} a minute; try again in {math.ceil(wait)} s",
                retry_after_s=wait,
            )


def api_key_routes(clock: Clock) -> APIRouter:
    """Issue, list and revoke the service's API keys: an admin's."""
    routes = APIRouter(
        prefix="/api-keys",
        tags=["api keys"],
        dependencies=[Depends(requiring(Role.ADMIN))],
        responses=SIGN_IN_ERRORS,
    )

    def keys_of(request: Request) -> ApiKeys:
        keys: ApiKeys = request.app.state.api_keys
        return keys

    @routes.post("", status_code=201, summary="Issue a key; its secret is in this answer only")
    async def issue(body: KeyRequest, request: Request, caller: Authenticated) -> IssuedKey:
        return await keys_of(request).issue(body, by=caller.actor, at=clock.now())

    @routes.get("", summary="The keys, newest first, without their secrets")
    async def listing(request: Request) -> list[KeyView]:
        return await keys_of(request).listing()

    @routes.delete("/{key_id}", summary="Revoke a key: it is refused from now on")
    async def revoke(
        key_id: Annotated[str, Path(min_length=1, max_length=40)], request: Request, caller: Authenticated
    ) -> KeyView:
        return await keys_of(request).revoke(key_id, by=caller.actor, at=clock.now())

    return routes


def install(app: FastAPI, settings: ServiceSettings, roster: Teams | None = None) -> TokenVerifier:
    """Give ``app`` the verifier its routes' ``authenticate`` uses, with ``roster`` for managers' teams
    (``KARIZ_TEAMS`` when none is given)."""
    verifier = TokenVerifier(settings, roster)
    app.state.verifier = verifier
    return verifier
