"""Signing in against a real issuer over HTTP (the devkit's LocalIssuer serves its discovery document and
JWKS): what is accepted, what answers 401, and who the caller is."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
import pytest_asyncio
from fastapi import APIRouter, Depends, FastAPI

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import bearer
from kariz_shared.contracts.identity import Caller, Role, Roster
from kariz_shared.runtime import auth
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.settings import ServiceSettings

TEAMS = {"emea": ["alex@kariz.example", "sam@kariz.example"]}


def app_for(issuer_url: str, **settings: object) -> FastAPI:
    app = FastAPI()
    shared_http.install(app, "test")
    auth.install(app, ServiceSettings(auth_issuer=issuer_url, teams=TEAMS, **settings))  # type: ignore[arg-type]
    routes = APIRouter(dependencies=[Depends(auth.authenticate)])

    @routes.get("/me")
    async def me(caller: auth.Authenticated) -> dict[str, object]:
        seen = None if caller.seen.these is None else sorted(caller.seen.these)
        return {"subject": caller.subject, "roles": sorted(caller.roles), "team": caller.team, "seen": seen}

    @routes.get("/admin", dependencies=[Depends(auth.requiring(Role.ADMIN))])
    async def admin_only() -> dict[str, str]:
        return {"ok": "yes"}

    app.include_router(routes)
    return app


@pytest_asyncio.fixture
async def api(issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app_for(issuer.url))
    async with httpx.AsyncClient(transport=transport, base_url="http://kariz.test") as client:
        yield client


async def test_no_token_is_401_with_a_bearer_challenge(api: httpx.AsyncClient) -> None:
    answer = await api.get("/me")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in answer.json()["message"]


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_a_token_of_the_issuer_names_the_caller(
    api: httpx.AsyncClient, issuer: LocalIssuer, algorithm: str
) -> None:
    token = issuer.token("Alex@Kariz.Example", ["rep"], team="emea", algorithm=algorithm)
    answer = await api.get("/me", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "subject": "alex@kariz.example",
        "roles": ["rep"],
        "team": "emea",
        "seen": ["alex@kariz.example"],
    }


async def test_a_manager_sees_the_team_and_an_admin_everyone(
    api: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    manager = await api.get(
        "/me", headers=bearer(issuer.token("kim@kariz.example", ["manager"], team="emea"))
    )
    # The team's reps, themself and the team's queue (leads waiting for the manager to hand them out).
    assert manager.json()["seen"] == [
        "alex@kariz.example",
        "kim@kariz.example",
        "queue:emea",
        "sam@kariz.example",
    ]
    admin = await api.get("/me", headers=bearer(issuer.token("root@kariz.example", ["admin"])))
    assert admin.json()["seen"] is None


@pytest.mark.parametrize(
    ("case", "make", "said"),
    [
        ("expired", lambda i: i.token("a@kariz.example", ttl_s=-120), "expired"),
        ("not yet valid", lambda i: i.token("a@kariz.example", not_before_s=600), "not yet valid"),
        ("other audience", lambda i: i.token("a@kariz.example", audience="billing"), "audience"),
        ("garbage", lambda i: "not.a.token", "does not verify"),
    ],
)
async def test_tokens_that_do_not_hold_are_401(
    api: httpx.AsyncClient, issuer: LocalIssuer, case: str, make: object, said: str
) -> None:
    answer = await api.get("/me", headers=bearer(make(issuer)))  # type: ignore[operator]
    assert answer.status_code == 401, case
    assert said in answer.json()["message"], answer.json()


async def test_a_token_signed_by_another_key_or_issuer_is_401(
    api: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    stranger = LocalIssuer()  # never started: its keys are published nowhere the service reads
    forged = stranger.token("a@kariz.example", ["admin"])
    answer = await api.get("/me", headers=bearer(forged))
    assert answer.status_code == 401
    # Claiming the right issuer with the wrong key does not help either.
    claims = {"iss": issuer.url, "aud": "kariz", "sub": "a@kariz.example", "roles": ["admin"], "exp": 2**40}
    same_kid = jwt.encode(claims, stranger.rsa, algorithm="RS256", headers={"kid": issuer.kids["RS256"]})
    assert (await api.get("/me", headers=bearer(same_kid))).status_code == 401
    # An unsigned token is refused whatever it claims.
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert (await api.get("/me", headers=bearer(unsigned))).status_code == 401


async def test_a_rotated_key_is_followed_without_a_restart(issuer: LocalIssuer) -> None:
    rotating = LocalIssuer().start()
    try:
        # Production reads the set again at most every 30 s; this test does not wait for that.
        transport = httpx.ASGITransport(app=app_for(rotating.url, auth_jwks_refetch_s=0))
        async with httpx.AsyncClient(transport=transport, base_url="http://kariz.test") as api:
            assert (
                await api.get("/me", headers=bearer(rotating.token("a@kariz.example")))
            ).status_code == 200
            rotating.rsa = LocalIssuer().rsa  # a new key under a new kid, published at once
            rotating.kids = {**rotating.kids, "RS256": "rotated-1"}
            answer = await api.get("/me", headers=bearer(rotating.token("a@kariz.example")))
            assert answer.status_code == 200, answer.text
    finally:
        rotating.stop()


async def test_a_role_the_caller_lacks_is_403(api: httpx.AsyncClient, issuer: LocalIssuer) -> None:
    answer = await api.get("/admin", headers=bearer(issuer.token("a@kariz.example", ["rep"])))
    assert answer.status_code == 403
    assert answer.json()["message"] == "this needs the role admin; a@kariz.example has rep"
    assert (
        await api.get("/admin", headers=bearer(issuer.token("r@kariz.example", ["admin"])))
    ).status_code == 200


async def test_with_no_issuer_configured_nothing_is_accepted(issuer: LocalIssuer) -> None:
    transport = httpx.ASGITransport(app=app_for(""))
    async with httpx.AsyncClient(transport=transport, base_url="http://kariz.test") as api:
        answer = await api.get("/me", headers=bearer(issuer.token("a@kariz.example", ["admin"])))
    assert answer.status_code == 401
    assert "KARIZ_AUTH_ISSUER" in answer.json()["message"]


async def test_an_unreachable_identity_provider_is_503_not_401(issuer: LocalIssuer) -> None:
    gone = LocalIssuer().start()
    url = gone.url
    token = gone.token("a@kariz.example", ["rep"])
    gone.stop()
    transport = httpx.ASGITransport(app=app_for(url))
    async with httpx.AsyncClient(transport=transport, base_url="http://kariz.test") as api:
        answer = await api.get("/me", headers=bearer(token))
    assert answer.status_code == 503
    assert answer.headers["retry-after"]


def test_claim_paths_reach_into_objects_for_keycloak_style_roles() -> None:
    verifier = auth.TokenVerifier(
        ServiceSettings(auth_issuer="https://idp.example", auth_roles_claim="realm_access.roles", teams=TEAMS)
    )
    caller = verifier.caller_of(
        {"sub": "Kim@Kariz.Example", "realm_access": {"roles": ["manager", "offline_access"]}, "team": "emea"}
    )
    roster = Roster.of(TEAMS)
    assert caller == Caller.signed_in("kim@kariz.example", frozenset({Role.MANAGER}), "emea", roster)
    assert caller.seen.include("sam@kariz.example") and not caller.seen.include("lee@kariz.example")
