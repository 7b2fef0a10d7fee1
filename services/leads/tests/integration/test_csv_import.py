"""CSV imports on the real database (and broker): a few thousand rows uploaded over HTTP by a manager and
followed to done, each row stored once; files that cannot be imported refused before anything is stored;
and a worker stopped mid-import (or dead, holding its lease) resumed by another, each row once."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import openpyxl
import pytest
import pytest_asyncio

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import bearer, eventually, unique
from kariz_leads.adapters.mongo.indexes import ensure_indexes
from kariz_leads.adapters.mongo.unit_of_work import MongoLeadsUnitOfWork
from kariz_leads.domain import ResponseSla, SalesTeam
from kariz_leads.domain.imports import ImportJob, ImportOptions, ImportStatus
from kariz_leads.entrypoints.import_worker import ImportWorker
from kariz_leads.entrypoints.imports import XLSX
from kariz_leads.service_layer.imports import ORPHAN_AGE, ImportRunner, Upload, start_import
from kariz_leads.settings import LeadsSettings
from kariz_shared.contracts.events import LeadCaptured, LeadSource
from kariz_shared.contracts.identity import Actor
from kariz_shared.persistence.store import Store
from kariz_shared.persistence.unit_of_work import MongoUnitsOfWork
from kariz_shared.runtime.clock import SystemClock

from .conftest import REPS, TERRITORIES, Leads

pytestmark = pytest.mark.integration

ROWS = 3000


def a_file(tag: str, rows: int, *, bad: int = 0, padding: int = 0) -> tuple[bytes, list[str]]:
    """A trade-show list: ``rows`` good rows (their addresses returned), ``bad`` rows without a valid
    address, and an ignored notes column of ``padding`` characters a row (a file over 2 MiB)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(["E-Mail", "First Name", "Surname", "Company", "Employees", "Country", "Notes"])
    emails = [f"{tag}-{n}@firm{n % 50}.example" for n in range(rows)]
    for n, email in enumerate(emails):
        writer.writerow([email, f"Ada{n}", "Lovelace", f"Firm {n % 50}", 10 + n % 900, "DE", "x" * padding])
    for n in range(bad):
        writer.writerow([f"broken-{n}", "Bob", "Builder", "Firm", "", "", ""])
    return out.getvalue().encode("utf-8-sig"), emails


async def until_finished(leads: Leads, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    seen: list[float] = []

    async def finished() -> dict[str, Any] | None:
        answer = await leads.http.get(f"/imports/{job_id}", headers=headers)
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        seen.append(job["progress"])
        return job if job["status"] in ("done", "failed") else None

    job: dict[str, Any] = await eventually(finished, timeout=120, interval=0.1)
    assert seen == sorted(seen)  # progress only grows
    return job


async def test_a_manager_uploads_a_csv_and_follows_it_to_done_with_every_row_stored_once(
    leads: Leads, issuer: LocalIssuer
) -> None:
    manager = bearer(issuer.token("greta@kariz.example", ["manager"], team="dach"))
    data, emails = a_file(unique("csv"), ROWS, bad=3, padding=700)
    assert len(data) > 2 * 1024 * 1024  # over the 2 MiB of the other routes
    started = time.monotonic()
    answer = await leads.http.post(
        "/imports",
        params={"source": "trade_show", "campaign": "cebit", "filename": "cebit.csv"},
        content=data,
        headers={**manager, "Content-Type": "text/csv"},
    )
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["status"] == "queued" and accepted["rows"]["total"] == ROWS + 3
    assert (accepted["delimiter"], accepted["encoding"]) == (";", "utf-8")
    assert accepted["columns"]["last_name"] == "Surname" and "Notes" not in accepted["columns"].values()

    job = await until_finished(leads, accepted["id"], manager)
    elapsed = time.monotonic() - started
    assert job["status"] == "done" and job["progress"] == 1.0, job
    assert job["rows"] == {
        "total": ROWS + 3,
        "processed": ROWS + 3,
        "created": ROWS,
        "duplicates": 0,
        "failed": 3,
    }
    print(f"\nCSV import: {ROWS + 3} rows in {elapsed:.1f} s, {(ROWS + 3) / elapsed:.0f} rows/s")

    stored = [doc async for doc in leads.db.leads.find({"contact.email": {"$in": emails}})]
    assert len(stored) == ROWS and {d["contact"]["email"] for d in stored} == set(emails)
    assert {(d["source"], d["campaign"], d["captured_by"]) for d in stored} == {
        ("trade_show", "cebit", "greta@kariz.example")
    }
    assert {d["owner"] for d in stored} == set(TERRITORIES["DE"])  # the DE territory, as captures are

    failures = await leads.http.get(f"/imports/{job['id']}/failures", headers=manager)
    assert failures.status_code == 200 and failures.json()["total"] == 3
    assert [f["row"] for f in failures.json()["items"]] == [ROWS + 2, ROWS + 3, ROWS + 4]
    download = await leads.http.get(
        f"/imports/{job['id']}/failures", params={"format": "csv"}, headers=manager
    )
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    table = list(csv.reader(io.StringIO(download.text)))
    assert table[0] == ["row", "email", "reason"] and len(table) == 4
    assert table[1][:2] == [str(ROWS + 2), "broken-0"] and "not an e-mail address" in table[1][2]

    # The manager's list shows the job; another manager does not see it; a rep may not import.
    mine = await leads.http.get("/imports", headers=manager)
    assert mine.status_code == 200 and mine.json()["items"][0]["id"] == job["id"]
    other = bearer(issuer.token("mia@kariz.example", ["manager"], team="emea"))
    assert (await leads.http.get(f"/imports/{job['id']}", headers=other)).status_code == 404
    assert all(
        j["id"] != job["id"] for j in (await leads.http.get("/imports", headers=other)).json()["items"]
    )
    assert (await leads.http.get(f"/imports/{job['id']}")).status_code == 200  # the admin sees all
    rep = bearer(issuer.token("jonas@kariz.example", ["rep"], team="dach"))
    refused = await leads.http.post(
        "/imports",
        params={"source": "event"},
        content=data[:500],
        headers={**rep, "Content-Type": "text/csv"},
    )
    assert refused.status_code == 403


async def test_a_fixed_owner_and_a_second_import_of_the_same_file_are_duplicates_only(
    leads: Leads, issuer: LocalIssuer
) -> None:
    manager = bearer(issuer.token("greta@kariz.example", ["manager"], team="dach"))
    headers = {**manager, "Content-Type": "text/csv"}
    data, emails = a_file(unique("owner"), 120)
    params = {"source": "partner", "owner": "lena@kariz.example"}
    first = await leads.http.post("/imports", params=params, content=data, headers=headers)
    assert first.status_code == 202, first.text
    assert (await until_finished(leads, first.json()["id"], manager))["rows"]["created"] == 120
    owners = {d["owner"] async for d in leads.db.leads.find({"contact.email": {"$in": emails}})}
    assert owners == {"lena@kariz.example"}
    again = await leads.http.post(
        "/imports", params={"source": "partner", "on_duplicate": "skip"}, content=data, headers=headers
    )
    done = await until_finished(leads, again.json()["id"], manager)
    assert (done["rows"]["created"], done["rows"]["duplicates"]) == (0, 120)
    # Owners out of the manager's reach are refused.
    outside = await leads.http.post(
        "/imports", params={"source": "partner", "owner": REPS[0]}, content=data, headers=headers
    )
    assert outside.status_code == 422 and "owner" in outside.json()["message"]


@pytest.mark.parametrize(
    ("body", "params", "says"),
    [
        (b"email,first name,last name\na@b.example,A,B\n", {}, "no column for company"),
        (
            "email,first name,last name,company\nj@b.example,José,B,C\n".encode("cp1252"),
            {"encoding": "utf-8"},
            "not utf-8",
        ),
        (b"email;first name;last name;company\na@b.example;A;B;C\n", {"delimiter": ","}, "delimiter may be"),
        (b"PK\x03\x04binary", {}, "XLSX"),
        (b"", {}, "empty"),
    ],
)
async def test_a_file_that_cannot_be_imported_is_422_and_nothing_is_stored(
    leads: Leads, issuer: LocalIssuer, body: bytes, params: dict[str, str], says: str
) -> None:
    who = unique("refused") + "@kariz.example"
    admin = bearer(issuer.token(who, ["admin"]))
    answer = await leads.http.post(
        "/imports",
        params={"source": "event", **params},
        content=body,
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert answer.status_code == 422, answer.text
    assert says in answer.json()["message"]
    assert await leads.db.import_jobs.count_documents({"started_by": who}) == 0


async def test_a_multipart_body_is_refused_with_415(leads: Leads) -> None:
    answer = await leads.http.post(
        "/imports", params={"source": "event"}, files={"file": ("a.csv", b"email\n")}
    )
    assert answer.status_code == 415 and "text/csv" in answer.json()["message"]


# --- a worker stopped or dead mid-import -----------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def own_database(
    settings_for: Callable[..., Any],
) -> AsyncIterator[MongoUnitsOfWork[MongoLeadsUnitOfWork]]:
    """Units of work on a database of this test's own, with no service running on it: the workers here
    are the only ones."""
    store = Store(settings_for(LeadsSettings, service_name="leads"))
    await store.ensure_indexes()
    await ensure_indexes(store)
    try:
        yield MongoUnitsOfWork(store, SystemClock(), MongoLeadsUnitOfWork)
    finally:
        await store.close()


TEAM = SalesTeam.of(REPS, TERRITORIES)
SLA = ResponseSla(timedelta(hours=4))


async def stored_job(units: MongoUnitsOfWork[MongoLeadsUnitOfWork], job_id: str) -> ImportJob:
    async def read(uow: MongoLeadsUnitOfWork) -> ImportJob | None:
        return await uow.imports.get(job_id)

    job = await units.read(read)
    assert job is not None
    return job


async def upload(units: MongoUnitsOfWork[MongoLeadsUnitOfWork], rows: int) -> tuple[ImportJob, list[str]]:
    data, emails = a_file(unique("resume"), rows)
    job = await start_import(
        units,
        Upload(data, "resume.csv", ImportOptions(LeadSource.TRADE_SHOW)),
        by=Actor("greta@kariz.example"),
        correlation_id=unique("cid"),
        chunk_rows=200,
    )
    return job, emails


async def each_row_once(units: MongoUnitsOfWork[MongoLeadsUnitOfWork], emails: list[str]) -> list[Any]:
    """Each row is one lead with one ``LeadCaptured`` in the outbox (no relay runs here); their events'
    headers."""
    db = units.store.db
    stored = [d["contact"]["email"] async for d in db.leads.find({"contact.email": {"$in": emails}})]
    assert len(stored) == len(set(stored)) == len(emails)
    events = [d["headers"] async for d in db.outbox.find({"topic": LeadCaptured.topic()})]
    assert len(events) == len(emails)
    return events


async def test_a_worker_stopped_between_chunks_hands_over_and_the_next_resumes_each_row_once(
    own_database: MongoUnitsOfWork[MongoLeadsUnitOfWork],
) -> None:
    units = own_database
    job, emails = await upload(units, 2000)
    assert job.chunks_total == 10
    first = ImportWorker(ImportRunner(units, TEAM, SLA, lease=timedelta(seconds=60)), idle_s=0.05)
    running = asyncio.create_task(first.run())

    async def some_chunks_done() -> ImportJob | None:
        stored = await stored_job(units, job.id)
        return stored if stored.next_chunk >= 3 else None

    await eventually(some_chunks_done, timeout=60, interval=0.02)
    running.cancel()  # a replica stopping (SIGTERM): the worker is cancelled wherever it is
    with pytest.raises(asyncio.CancelledError):
        await running
    stopped = await stored_job(units, job.id)
    assert stopped.status is ImportStatus.RUNNING and stopped.next_chunk < stopped.chunks_total
    assert stopped.claimed_by is None  # handed back at once
    db = units.store.db
    # Every committed chunk's leads, and nothing of the one in flight.
    assert await db.leads.count_documents({"contact.email": {"$in": emails}}) == stopped.processed
    assert await db.import_chunks.count_documents({"job_id": job.id}) == 10

    second = ImportWorker(ImportRunner(units, TEAM, SLA, lease=timedelta(seconds=60)), idle_s=0.05)
    resumed = asyncio.create_task(second.run())
    try:

        async def done() -> ImportJob | None:
            stored = await stored_job(units, job.id)
            return stored if stored.finished else None

        finished = await eventually(done, timeout=60, interval=0.05)
    finally:
        resumed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await resumed
    assert (finished.status, finished.processed, finished.created, finished.duplicates) == (
        ImportStatus.DONE,
        2000,
        2000,
        0,
    )
    events = await each_row_once(units, emails)
    assert await db.import_chunks.count_documents({"job_id": job.id}) == 0  # the file is not kept
    assert {h["ce_actor"] for h in events} == {"greta@kariz.example"}  # the importer, not the worker


async def test_a_dead_workers_job_is_taken_over_after_its_lease_each_row_once(
    own_database: MongoUnitsOfWork[MongoLeadsUnitOfWork],
) -> None:
    units = own_database
    job, emails = await upload(units, 1000)
    lease = timedelta(seconds=1.5)
    dead = ImportRunner(units, TEAM, SLA, lease=lease)
    claimed = await dead.claim("dead-worker")
    assert claimed is not None and claimed.id == job.id
    for _ in range(2):
        await dead.capture_next_chunk(job.id, "dead-worker")
    # The worker dies here (SIGKILL): its claim stays until the lease runs out.
    heir = ImportRunner(units, TEAM, SLA, lease=timedelta(seconds=60))
    assert await heir.claim("heir") is None
    taken = await eventually(lambda: heir.claim("heir"), timeout=10, interval=0.1)
    assert taken.next_chunk == 2 and taken.claimed_by == "heir"
    finished = await heir.run(taken, "heir")
    assert (finished.status, finished.processed, finished.created) == (ImportStatus.DONE, 1000, 1000)
    await each_row_once(units, emails)


async def test_a_partner_key_with_the_import_scope_imports_for_its_source_and_sees_its_own_jobs(
    leads: Leads,
) -> None:
    issued = await leads.http.post(
        "/api-keys",
        json={"name": "partner feed", "scopes": ["leads:import"], "source": "partner", "campaign": "q3"},
    )
    assert issued.status_code == 201, issued.text
    key = {"X-Api-Key": issued.json()["key"], "Authorization": "", "Content-Type": "text/csv"}
    data, emails = a_file(unique("key"), 30)
    wrong = await leads.http.post("/imports", params={"source": "event"}, content=data, headers=key)
    assert wrong.status_code == 422 and "partner" in wrong.json()["message"]
    answer = await leads.http.post("/imports", params={"source": "partner"}, content=data, headers=key)
    assert answer.status_code == 202, answer.text
    assert answer.json()["campaign"] == "q3" and answer.json()["started_by"].startswith("key:")
    done = await until_finished(leads, answer.json()["id"], key)
    assert done["rows"]["created"] == 30
    stored = [d async for d in leads.db.leads.find({"contact.email": {"$in": emails}})]
    assert {(d["source"], d["campaign"], d["captured_by"]) for d in stored} == {
        ("partner", "q3", answer.json()["started_by"])
    }
    # It sees its own jobs only, and no lead.
    assert [j["id"] for j in (await leads.http.get("/imports", headers=key)).json()["items"]] == [done["id"]]
    assert (await leads.http.get(f"/leads/{stored[0]['_id']}", headers=key)).status_code == 403


async def test_an_xlsx_workbook_is_imported_too(leads: Leads, issuer: LocalIssuer) -> None:
    manager = bearer(issuer.token("greta@kariz.example", ["manager"], team="dach"))
    tag = unique("xlsx")
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["E-Mail Address", "First Name", "Surname", "Organisation", "Country"])
    emails = [f"{tag}-{n}@firm.example" for n in range(40)]
    for n, email in enumerate(emails):
        sheet.append([email, f"Ada{n}", "Lovelace", "Firm", "DE"])
    out = io.BytesIO()
    book.save(out)
    answer = await leads.http.post(
        "/imports",
        params={"source": "event"},
        content=out.getvalue(),
        headers={**manager, "Content-Type": XLSX},
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["encoding"] == "xlsx"
    done = await until_finished(leads, answer.json()["id"], manager)
    assert done["rows"]["created"] == 40
    assert await leads.db.leads.count_documents({"contact.email": {"$in": emails}}) == 40


async def test_the_sweep_deletes_the_files_of_uploads_that_never_got_their_job(
    own_database: MongoUnitsOfWork[MongoLeadsUnitOfWork],
) -> None:
    units = own_database
    kept, _ = await upload(units, 300)  # two chunks, and its job
    db = units.store.db
    now = units.clock.now()
    old = now - ORPHAN_AGE - timedelta(minutes=1)
    await db.import_chunks.update_many({"job_id": kept.id}, {"$set": {"stored_at": old}})
    empty = {"columns": [], "rows": []}
    await db.import_chunks.insert_many(
        [
            {"_id": "dead:0", "job_id": "dead", "index": 0, "stored_at": old, **empty},
            {"_id": "dead:1", "job_id": "dead", "index": 1, "stored_at": old, **empty},
            {"_id": "older:0", "job_id": "older", "index": 0, **empty},  # stored before stored_at was
            {"_id": "fresh:0", "job_id": "fresh", "index": 0, "stored_at": now, **empty},  # uploading
        ]
    )
    runner = ImportRunner(units, TEAM, SLA)
    assert await runner.sweep_orphans() == 2
    left = {doc["job_id"] async for doc in db.import_chunks.find({}, projection={"job_id": 1})}
    assert left == {kept.id, "fresh"}
    assert await db.import_chunks.count_documents({"job_id": kept.id}) == 2
