"""Who the synthetic leads are and what happens to them, drawn from one seed (plain Python, no I/O).

The mix follows what B2B sales teams report: most leads come from web forms, campaigns and events,
few from referrals and partners; a minority fits well enough to qualify at once, many wait for a
qualification call, and deals are lost more often than won, often after going back a stage.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from faker import Faker

SOURCES: dict[str, int] = {
    "web_form": 26,
    "email_campaign": 12,
    "event": 8,
    "trade_show": 10,
    "partner": 8,
    "free_trial": 10,
    "referral": 8,
    "purchased_list": 6,
    "inbound_call": 6,
    "outbound": 6,
}
INDUSTRIES: dict[str, int] = {
    "software": 24,
    "financial_services": 14,
    "manufacturing": 14,
    "healthcare": 10,
    "retail": 10,
    "logistics": 8,
    "education": 6,
    "energy": 6,
    "public_sector": 4,
    "media": 4,
}
# Country -> Faker locale, weighted by how often the country shows up in a European/US sales team's leads.
COUNTRIES: dict[str, tuple[str, int]] = {
    "US": ("en_US", 24),
    "DE": ("de_DE", 18),
    "GB": ("en_GB", 16),
    "FR": ("fr_FR", 10),
    "NL": ("nl_NL", 8),
    "ES": ("es_ES", 6),
    "IT": ("it_IT", 6),
    "SE": ("sv_SE", 4),
    "PL": ("pl_PL", 4),
    "BR": ("pt_BR", 4),
}
# Employees: small companies are many, enterprises few.
SIZE_BANDS: list[tuple[int, int, int]] = [
    (1, 9, 14),
    (10, 49, 24),
    (50, 199, 26),
    (200, 999, 22),
    (1000, 20000, 14),
]
TITLES: dict[str, int] = {
    "CEO": 4,
    "CTO": 4,
    "CFO": 2,
    "VP Sales": 5,
    "VP Engineering": 5,
    "Director of Operations": 7,
    "IT Director": 7,
    "Head of Procurement": 6,
    "Sales Manager": 10,
    "Project Manager": 10,
    "Operations Manager": 10,
    "Software Engineer": 10,
    "Analyst": 10,
    "Consultant": 10,
}
LOSS_REASONS: dict[str, int] = {
    "price too high": 30,
    "chose a competitor": 25,
    "no decision": 20,
    "budget cut": 12,
    "timing: project postponed": 8,
    "missing feature": 5,
}
FORWARD = ["discovery", "demo", "proposal", "negotiation", "contract"]


def ascii_letters(text: str) -> str:
    """Letters and digits of ``text`` without accents (Müller -> muller): e-mail addresses are ASCII."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


@dataclass(frozen=True)
class Move:
    """One step of a deal's journey: ``POST /deals/{id}/stage`` with this body."""

    stage: str
    amount: str | None = None
    reason: str | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"stage": self.stage}
        if self.amount is not None:
            body["amount"] = self.amount
        if self.reason is not None:
            body["reason"] = self.reason
        return body


@dataclass(frozen=True)
class SyntheticLead:
    """A lead as a form or an import would send it, and what the rep will do with it."""

    number: int
    body: dict[str, Any]
    #: The BANT answers a qualification call records if the lead is nurtured after scoring.
    call: dict[str, Any]
    #: How its deal goes, if it gets one: stage moves ending in won or lost.
    journey: list[Move] = field(default_factory=list)

    @property
    def email(self) -> str:
        return str(self.body["contact"]["email"])

    @property
    def source(self) -> str:
        return str(self.body["source"])

    @property
    def outcome(self) -> str:
        """``won`` or ``lost``: where its deal ends, if it gets one."""
        return self.journey[-1].stage if self.journey else "none"


RUN_CAMPAIGN_PREFIX = "demo-"


def run_campaign(run_tag: str, source: str) -> str:
    """The campaign of a run's first captures from ``source``: ``demo-<run tag>-<source>``."""
    return f"{RUN_CAMPAIGN_PREFIX}{run_tag}-{source}"


def source_of_run_campaign(campaign: str, run_tag: str) -> str | None:
    """The source a campaign of this run stands for, or None for any other campaign."""
    prefix = run_campaign(run_tag, "")
    return campaign[len(prefix) :] or None if campaign.startswith(prefix) else None


class Population:
    """Synthetic leads, the same for the same seed. ``run_tag`` keeps e-mails unique across runs on
    one database, so a second run captures new leads rather than touches of old ones."""

    def __init__(
        self, seed: int = 7, run_tag: str = "", *, brisk: bool = False, run_campaigns: bool = False
    ) -> None:
        self.rng = random.Random(seed)
        self.run_tag = run_tag
        #: Each first capture's campaign is the run's for its source (``run_campaign``), so the reports
        #: service answers for the run alone (``?by=campaign``) among everything else it counted.
        self.run_campaigns = run_campaigns and bool(run_tag)
        #: Brisk deals jump stages (allowed: a rep may skip ahead) so a run spends its time on many leads
        #: rather than on many moves of each; they still go back a stage now and then.
        self.brisk = brisk
        self.fakers = {country: Faker(locale) for country, (locale, _) in COUNTRIES.items()}
        for n, fake in enumerate(self.fakers.values()):
            fake.seed_instance(seed * 1000 + n)
        self._emitted: list[SyntheticLead] = []

    def leads(self, count: int, *, repeat_share: float = 0.03) -> list[SyntheticLead]:
        """``count`` captures; about ``repeat_share`` of them are the same person again from another
        source (a touch of a known lead), as happens when a prospect downloads a paper and then visits
        a booth."""
        result: list[SyntheticLead] = []
        for n in range(count):
            if self._emitted and self.rng.random() < repeat_share:
                result.append(self._touch_again(n, self.rng.choice(self._emitted)))
            else:
                lead = self._lead(n)
                self._emitted.append(lead)
                result.append(lead)
        return result

    def _lead(self, n: int) -> SyntheticLead:
        rng = self.rng
        country = rng.choices(list(COUNTRIES), weights=[w for _, w in COUNTRIES.values()])[0]
        fake = self.fakers[country]
        first, last = fake.first_name(), fake.last_name()
        company = fake.company()
        slug = ascii_letters(company)[:24] or "company"
        low, high, _ = rng.choices(SIZE_BANDS, weights=[w for *_, w in SIZE_BANDS])[0]
        local = f"{ascii_letters(first) or 'x'}.{ascii_letters(last) or 'x'}"
        tag = f".{self.run_tag}" if self.run_tag else ""
        body = {
            "contact": {
                "first_name": first,
                "last_name": last,
                "email": f"{local}.{n}{tag}@{slug}.example",
                "title": pick(rng, TITLES),
                "phone": fake.phone_number()[:40] if rng.random() < 0.6 else None,
            },
            "company": {
                "name": company,
                "industry": pick(rng, INDUSTRIES),
                "size": rng.randint(low, high),
                "country": country,
            },
            "source": pick(rng, SOURCES),
            "campaign": rng.choice(
                [None, "spring-webinar", "q3-trade-show", "partner-referrals", "free-trial"]
            ),
            "consent": rng.random() < 0.9,
        }
        if self.run_campaigns:
            body["campaign"] = run_campaign(self.run_tag, str(body["source"]))
        return SyntheticLead(n, body, self._call(), self._journey())

    def _touch_again(self, n: int, known: SyntheticLead) -> SyntheticLead:
        body = {**known.body, "source": pick(self.rng, SOURCES), "campaign": "second-touch"}
        return SyntheticLead(n, body, known.call, known.journey)

    def _call(self) -> dict[str, Any]:
        """A qualification call. Many end it there (no need, no budget); of the rest, the ones with a
        confirmed need, budget and a decision maker soon qualify, the vaguer ones stay nurtured."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.25:
            need, budget = "none", rng.choice(["unknown", "planned"])
        elif roll < 0.40:
            need, budget = rng.choice(["possible", "confirmed"]), "none"
        else:
            need = rng.choice(["confirmed", "possible", "possible"])
            budget = rng.choice(["confirmed", "planned", "planned", "unknown"])
        amount = str(rng.choice([5000, 12000, 25000, 48000, 90000]))
        return {
            "budget": budget,
            "budget_amount": amount if budget != "none" else None,
            "authority": rng.choice(["decision_maker", "influencer", "influencer", "unknown"]),
            "need": need,
            "pain": rng.choice(["manual quoting", "slow reporting", "lost leads", "no pipeline view"]),
            "timeline": rng.choice(["within_3_months", "within_6_months", "within_12_months", "later"]),
        }

    def _journey(self) -> list[Move]:
        """Forward through the stages, sometimes a step back, then won (about 40 %) or lost with a reason."""
        rng = self.rng
        amount = str(rng.choice([8000, 15000, 24000, 36000, 48000, 75000, 120000, 250000]))
        won = rng.random() < 0.4
        # A lost deal falls out somewhere along the way; a won one goes all the way.
        reach = len(FORWARD) if won else rng.randint(1, len(FORWARD))
        stages = list(enumerate(FORWARD[:reach]))
        if self.brisk:
            # Straight to the last stage reached (with the amount if it is from proposal on).
            stages = stages[-1:]
        moves: list[Move] = []
        for i, stage in stages:
            # The amount is set with the proposal and kept from there on.
            needs_amount = i >= FORWARD.index("proposal") and not any(m.amount for m in moves)
            moves.append(Move(stage, amount if needs_amount else None))
            if i >= 2 and rng.random() < 0.12:
                # The customer asks for another demo (or a revised proposal): back one stage, then on again.
                # A move back says why (deals refuses one without a reason).
                moves.append(Move(FORWARD[i - 1], reason="the customer asked to see it again"))
                moves.append(Move(stage))
        if won:
            moves.append(Move("won"))
        else:
            moves.append(Move("lost", reason=pick(rng, LOSS_REASONS)))
        return moves
