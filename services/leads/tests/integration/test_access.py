"""Who sees which leads, on the real database: the owner filter is part of the query (the page and its
total), another rep's lead does not exist for a rep, a manager sees the team, and no token gets nothing."""

from __future__ import annotations

from typing import Any

import pytest

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import bearer, unique

from .conftest import Leads

pytestmark = pytest.mark.integration


async def test_a_rep_sees_their_own_leads_a_manager_the_team_and_nobody_else_anything(
    leads: Leads, lead_body: Any, issuer: LocalIssuer
) -> None:
    industry = unique("access")
    captured = []
    for n in range(4):  # the DE territory alternates between jonas and lena
        body = lead_body(company={"country": "DE", "industry": industry, "name": f"Co {n}"})
        answer = await leads.http.post("/leads", json=body)
        assert answer.status_code == 201, answer.text
        captured.append(answer.json())
    by_owner: dict[str, set[str]] = {}
    for lead in captured:
        by_owner.setdefault(lead["owner"], set()).add(lead["id"])
    assert set(by_owner) == {"jonas@kariz.example", "lena@kariz.example"}

    jonas = bearer(issuer.token("jonas@kariz.example", ["rep"], team="dach"))
    manager = bearer(issuer.token("greta@kariz.example", ["manager"], team="dach"))
    outsider = bearer(issuer.token("alex@kariz.example", ["rep"]))

    async def seen(headers: dict[str, str], **params: Any) -> tuple[set[str], int]:
        page = await leads.http.get("/leads", params={"industry": industry, **params}, headers=headers)
        assert page.status_code == 200, page.text
        return {lead["id"] for lead in page.json()["items"]}, page.json()["total"]

    assert await seen(jonas) == (by_owner["jonas@kariz.example"], 2)
    assert await seen(jonas, owner="lena@kariz.example") == (set(), 0)
    assert await seen(manager) == (by_owner["jonas@kariz.example"] | by_owner["lena@kariz.example"], 4)
    assert await seen(outsider) == (set(), 0)

    lenas = next(iter(by_owner["lena@kariz.example"]))
    assert (await leads.http.get(f"/leads/{lenas}", headers=jonas)).status_code == 404
    # Capturing an address that is Lena's lead shows Jonas nothing of it: a receipt, as for a new lead.
    lenas_email = next(c["contact"]["email"] for c in captured if c["id"] == lenas)
    again = await leads.http.post("/leads", json=lead_body(lenas_email), headers=jonas)
    assert again.status_code == 201 and again.json().keys() == {"accepted", "correlation_id"}
    assert (await leads.http.get(f"/leads/{lenas}", headers=manager)).status_code == 200
    # Importing is a manager's (or an admin's) work.
    one = {"leads": [lead_body(company={"industry": industry})]}
    refused = await leads.http.post("/leads/import", json=one, headers=jonas)
    assert refused.status_code == 403 and "manager or admin" in refused.json()["message"]
    assert (await seen(manager))[1] == 4  # nothing was imported
    for headers in ({"Authorization": ""}, bearer(issuer.token("jonas@kariz.example", audience="other"))):
        assert (await leads.http.get("/leads", headers=headers)).status_code == 401
        assert (await leads.http.post("/leads", json=lead_body(), headers=headers)).status_code == 401
