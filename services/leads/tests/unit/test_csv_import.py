"""CSV imports on the in-memory unit of work: reading a file (headers, synonyms, delimiters, encodings,
missing columns), rows that fail with their number and reason, chunks, duplicate policies, a fixed
owner, and a worker that dies after chunk k: the next one resumes and every row is stored once."""

from __future__ import annotations

import codecs
import io
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest

from kariz_leads.adapters.in_memory import InMemoryLeadsUnitOfWork
from kariz_leads.adapters.in_memory_imports import InMemoryImportJobs
from kariz_leads.domain import AssignedBy, ResponseSla, SalesTeam
from kariz_leads.domain.history import LeadChangeKind
from kariz_leads.domain.imports import (
    Column,
    DuplicatePolicy,
    ImportJob,
    ImportOptions,
    ImportStatus,
    InvalidFile,
    LeaseLost,
    read_csv,
    read_file,
)
from kariz_leads.service_layer.imports import ORPHAN_AGE, ImportRunner, Upload, start_import
from kariz_shared.contracts.events import LeadCaptured, LeadSource
from kariz_shared.contracts.identity import Actor
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock

Units = InMemoryUnitsOfWork[InMemoryLeadsUnitOfWork]

TEAM = SalesTeam.of(["alex@kariz.example", "sam@kariz.example"])
SLA = ResponseSla(timedelta(hours=4))
MANAGER = Actor("maria@kariz.example")
LEASE = timedelta(seconds=30)
TRADE_SHOW = ImportOptions(LeadSource.TRADE_SHOW, campaign="cebit-2026")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(clock))


def people(n: int, *, start: int = 0) -> str:
    lines = ["email,first name,last name,company,country"]
    lines += [f"p{i}@acme{i % 7}.example,Ada{i},Lovelace,Acme {i % 7},DE" for i in range(start, start + n)]
    return "\n".join(lines) + "\n"


async def imported(
    units: Units, text: str | bytes, options: ImportOptions = TRADE_SHOW, *, chunk_rows: int = 500, **how: str
) -> ImportJob:
    data = text if isinstance(text, bytes) else text.encode()
    upload = Upload(data, "leads.csv", options, **how)  # type: ignore[arg-type]
    return await start_import(units, upload, by=MANAGER, correlation_id="cid-1", chunk_rows=chunk_rows)


async def run_all(units: Units, token: str = "worker-a") -> ImportJob:
    runner = ImportRunner(units, TEAM, SLA, lease=LEASE)
    job = await runner.claim(token)
    assert job is not None
    return await runner.run(job, token)


# --- reading a file ------------------------------------------------------------------------------


def test_recognised_headers_with_synonyms_case_and_spacing_and_a_sniffed_semicolon() -> None:
    text = (
        " E-Mail Address ;Vorname;SURNAME;Organisation;No. of Employees;Job Title;Website;Sector;Land\n"
        "ada@acme.example;Ada;Lovelace;Acme;1,200;CTO;https://www.acme.example;Software;de\n"
    )
    read = read_csv(text.encode())
    assert read.delimiter == ";" and read.encoding == "utf-8"
    assert set(read.columns) == {
        Column.EMAIL,
        Column.FIRST_NAME,
        Column.LAST_NAME,
        Column.COMPANY,
        Column.SIZE,
        Column.TITLE,
        Column.DOMAIN,
        Column.INDUSTRY,
        Column.COUNTRY,
    }
    [row] = read.rows
    assert (
        row.number == 2
        and row.cells[Column.SIZE] == "1,200"
        and row.cells[Column.EMAIL] == "ada@acme.example"
    )


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_each_delimiter_is_sniffed(delimiter: str) -> None:
    text = delimiter.join(["Email", "First Name", "Last Name", "Company"]) + "\n"
    text += delimiter.join(["ada@acme.example", "Ada", "Lovelace", '"Acme, Inc."']) + "\n"
    read = read_csv(text.encode())
    assert read.delimiter == delimiter and read.rows[0].cells[Column.COMPANY] == "Acme, Inc."


def test_an_explicit_delimiter_that_is_wrong_says_which_columns_are_missing() -> None:
    with pytest.raises(InvalidFile, match="no column for e-mail"):
        read_csv(people(2).encode(), delimiter=";")
    assert read_csv(people(2).encode(), delimiter=",").delimiter == ","


def test_a_mapping_names_the_headers_a_file_has() -> None:
    text = "Work Mail,Given,Family,Firm\nada@acme.example,Ada,Lovelace,Acme\n"
    with pytest.raises(InvalidFile, match="no column for e-mail and first name and last name"):
        read_csv(text.encode())
    mapping = {"email": "work mail", "first_name": "Given", "last_name": "Family", "company": "FIRM"}
    read = read_csv(text.encode(), mapping=mapping)
    assert read.columns[Column.EMAIL] == "Work Mail" and read.rows[0].cells[Column.LAST_NAME] == "Lovelace"
    with pytest.raises(InvalidFile, match="'phonenumber' is not a lead field"):
        read_csv(text.encode(), mapping={**mapping, "phonenumber": "Firm"})
    with pytest.raises(InvalidFile, match="no column 'Telefon'"):
        read_csv(text.encode(), mapping={**mapping, "phone": "Telefon"})


def test_missing_required_columns_are_named() -> None:
    with pytest.raises(InvalidFile, match="no column for company"):
        read_csv(b"email,first name,last name\nada@acme.example,Ada,Lovelace\n")
    # A full name stands for first and last name.
    read = read_csv(b"Full Name,Email,Company\nAda King Lovelace,ada@acme.example,Acme\n")
    assert Column.FULL_NAME in read.columns


def test_utf8_with_bom_and_windows_1252_and_utf16_are_read() -> None:
    text = "email,first name,last name,company\njose@acme.example,José,Müller,Bäckerei Größe\n"
    for data, encoding in (
        (codecs.BOM_UTF8 + text.encode(), "utf-8"),
        (text.encode("cp1252"), "windows-1252"),
        (text.encode("utf-16"), "utf-16"),
    ):
        read = read_csv(data)
        assert read.encoding == encoding
        assert read.rows[0].cells[Column.LAST_NAME] == "Müller"
        assert read.rows[0].cells[Column.COMPANY] == "Bäckerei Größe"
    assert read_csv(text.encode("latin-1"), encoding="latin-1").rows[0].cells[Column.FIRST_NAME] == "José"


def test_bad_encodings_and_binary_files_are_refused_clearly() -> None:
    text = "email,first name,last name,company\njose@acme.example,José,Müller,Acme\n"
    with pytest.raises(InvalidFile, match=r"not utf-8 text \(byte \d+, line 2\)"):
        read_csv(text.encode("cp1252"), encoding="utf-8")
    with pytest.raises(InvalidFile, match="'klingon' is not an encoding"):
        read_csv(text.encode(), encoding="klingon")
    with pytest.raises(InvalidFile, match="is not an encoding"):
        read_csv(text.encode(), encoding="\x00")  # a NUL in the name: codecs raises ValueError
    for codec in ("rot13", "base64"):  # codecs, but not of text
        with pytest.raises(InvalidFile, match="cannot be read as"):
            read_csv(text.encode(), encoding=codec)
    with pytest.raises(InvalidFile, match="binary data"):
        read_csv(b"email,name\x00\x01\x02,company\n")
    with pytest.raises(InvalidFile, match="XLSX"):
        read_csv(b"PK\x03\x04\x14\x00\x06\x00")
    with pytest.raises(InvalidFile, match="empty"):
        read_csv(b"  \n")
    with pytest.raises(InvalidFile, match="no rows"):
        read_csv(b"email,first name,last name,company\n\n,,,\n")


def test_a_file_over_the_row_limit_or_broken_csv_is_refused() -> None:
    with pytest.raises(InvalidFile, match="more than 3 rows"):
        read_csv(people(4).encode(), max_rows=3)
    with pytest.raises(InvalidFile, match="not valid CSV at line"):
        read_csv(b'email,first name,last name,company\nada@acme.example,"Ada,Lovelace,Acme\n')


def workbook(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_xlsx_workbooks_first_sheet_is_read_as_rows() -> None:
    data = workbook(
        [
            ["E-Mail", "First Name", "Last Name", "Company", "Employees", "Opt-In", None],
            ["ada@acme.example", "Ada", "Lovelace", "Acme", 1200, True],
            [None, None, None, None, None, None],
            ["bob@acme.example", "Bob", "Builder", "Acme", 12.0, False],
        ]
    )
    read = read_file(data)
    assert (read.encoding, read.delimiter) == ("xlsx", "")
    assert [(r.number, r.cells[Column.SIZE], r.cells[Column.CONSENT]) for r in read.rows] == [
        (2, "1200", "yes"),
        (4, "12", "no"),
    ]
    with pytest.raises(InvalidFile, match="no column for company"):
        read_file(workbook([["email", "first name", "last name"], ["a@b.example", "A", "B"]]))
    with pytest.raises(InvalidFile, match="not an XLSX workbook"):
        read_file(b"PK\x03\x04 not really a workbook")


# --- importing -----------------------------------------------------------------------------------


async def test_a_file_is_stored_in_chunks_and_captured_chunk_by_chunk(units: Units, clock: FakeClock) -> None:
    job = await imported(units, people(1234), chunk_rows=100)
    assert (job.status, job.rows_total, job.chunks_total, job.progress) == (ImportStatus.QUEUED, 1234, 13, 0)
    assert len(units.uow.leads.by_id) == 0  # nothing is captured at upload
    runner = ImportRunner(units, TEAM, SLA, lease=LEASE)
    claimed = await runner.claim("a")
    assert claimed is not None and claimed.status is ImportStatus.RUNNING
    after_one = await runner.capture_next_chunk(job.id, "a")
    assert (after_one.next_chunk, after_one.processed, after_one.created) == (1, 100, 100)
    assert after_one.progress == round(100 / 1234, 4)
    done = await runner.run(after_one, "a")
    assert (done.status, done.processed, done.created, done.duplicates, done.failed) == (
        ImportStatus.DONE,
        1234,
        1234,
        0,
        0,
    )
    assert done.progress == 1.0 and done.finished_at == clock.now() and done.claimed_by is None
    assert not [key for key in units.uow.imports.chunks if key[0] == job.id]  # the file is not kept
    leads = list(units.uow.leads.by_id.values())
    assert len({lead.email for lead in leads}) == len(leads) == 1234
    assert {lead.source for lead in leads} == {LeadSource.TRADE_SHOW}
    assert {lead.campaign for lead in leads} == {"cebit-2026"}
    # The importer is each lead's actor; each lead is its own story.
    assert {lead.captured_by for lead in leads} == {MANAGER.who}
    captured = units.of_type(LeadCaptured)
    assert len(captured) == 1234 and {e.actor for e in captured} == {MANAGER.who}
    assert await runner.claim("a") is None  # nothing left to do


async def test_bad_rows_fail_with_their_row_number_and_reason_and_the_rest_is_imported(units: Units) -> None:
    text = (
        "email,first name,last name,company,size,country\n"
        "ada@acme.example,Ada,Lovelace,Acme,40,DE\n"
        "not-an-address,Bob,Builder,Acme,,\n"
        "\n"
        "cy@acme.example,Cy,Young,,10,\n"
        "dee@acme.example,Dee,Dee,Acme,lots,\n"
        "eve@acme.example,Eve,Online,Acme,5,Germania\n"
        ",Fay,Wray,Acme,,\n"
        "gus@acme.example,Gus,,Acme,,\n"
    )
    job = await imported(units, text)
    done = await run_all(units)
    assert (done.rows_total, done.created, done.failed) == (7, 1, 6)
    failures, total = await units.uow.imports.failures(job.id)
    assert total == 6
    by_row = {f.row: f.reason for f in failures}
    assert [f.row for f in failures] == [3, 5, 6, 7, 8, 9]
    assert by_row[3].startswith("email:") and "not an e-mail address" in by_row[3]
    assert by_row[5].startswith("company:") and "blank" in by_row[5]  # row 4 is blank, left out
    assert by_row[6] == "size: 'lots' is not a number of employees"
    assert by_row[7].startswith("country:")
    assert by_row[8] == "email: blank: an e-mail address is required"
    assert by_row[9].startswith("last_name:")
    assert [f.email for f in failures][:1] == ["not-an-address"]


async def test_a_full_name_is_split_and_sizes_with_separators_are_read(units: Units) -> None:
    text = 'Name,E-mail,Company,Employees\nAda King Lovelace,ada@acme.example,Acme,"1,200"\n'
    await imported(units, text)
    await run_all(units)
    [lead] = units.uow.leads.by_id.values()
    assert (lead.contact.first_name, lead.contact.last_name) == ("Ada King", "Lovelace")
    assert lead.company.size == 1200 and lead.company.domain == "acme.example"


async def test_countries_written_as_names_or_alpha_3_codes_are_stored_as_their_iso_codes(
    units: Units,
) -> None:
    text = (
        "email,first name,last name,company,country\n"
        "ada@acme.example,Ada,Lovelace,Acme,Germany\n"
        "bob@acme.example,Bob,Builder,Acme,GBR\n"
        "cy@acme.example,Cy,Young,Acme,viet nam\n"
    )
    await imported(units, text)
    done = await run_all(units)
    assert (done.created, done.failed) == (3, 0)
    by_email = {lead.email: lead.company.country for lead in units.uow.leads.by_id.values()}
    assert by_email == {"ada@acme.example": "DE", "bob@acme.example": "GB", "cy@acme.example": "VN"}


async def test_an_xlsx_upload_is_imported_like_a_csv_file(units: Units) -> None:
    rows: list[list[object]] = [["Email", "Vorname", "Nachname", "Firma"]]
    rows += [[f"x{n}@acme.example", "X", f"N{n}", "Acme"] for n in range(25)]
    await imported(units, workbook(rows), chunk_rows=10)
    done = await run_all(units)
    assert (done.encoding, done.chunks_total, done.created) == ("xlsx", 3, 25)


async def test_a_consent_column_is_read_as_yes_or_no(units: Units) -> None:
    text = (
        "email,first name,last name,company,Opt-In\n"
        "a@acme.example,A,A,Acme,yes\n"
        "b@acme.example,B,B,Acme,0\n"
        "c@acme.example,C,C,Acme,\n"
        "d@acme.example,D,D,Acme,maybe\n"
    )
    await imported(units, text)
    done = await run_all(units)
    assert (done.created, done.failed) == (3, 1)
    consent = {lead.email: lead.consent for lead in units.uow.leads.by_id.values()}
    assert consent == {"a@acme.example": True, "b@acme.example": False, "c@acme.example": False}
    [failure], _ = await units.uow.imports.failures(done.id)
    assert (failure.row, failure.reason) == (5, "consent: 'maybe' is not yes or no")


async def known_lead(units: Units) -> None:
    await imported(
        units, "email,first name,last name,company,title\nada@acme.example,Ada,Lovelace,Acme,CTO\n"
    )
    await run_all(units)


AGAIN = (
    "email,first name,last name,company,phone,title,size\n"
    "ada@acme.example,Ada,Lovelace,Acme,+44 20 7946 0958,Intern,40\n"
    "new@acme.example,New,Person,Acme,,,\n"
    "new@acme.example,New,Person,Acme,+49 30 1234567,VP Sales,\n"
)


async def test_duplicates_skipped(units: Units) -> None:
    await known_lead(units)
    await imported(units, AGAIN, ImportOptions(LeadSource.EVENT, duplicates=DuplicatePolicy.SKIP))
    finished = await run_all(units)
    assert (finished.created, finished.duplicates, finished.failed) == (1, 2, 0)
    ada = next(lead for lead in units.uow.leads.by_id.values() if lead.email == "ada@acme.example")
    assert ada.touch_count == 1 and ada.contact.phone is None
    new = next(lead for lead in units.uow.leads.by_id.values() if lead.email == "new@acme.example")
    assert new.touch_count == 1 and new.contact.phone is None


async def test_duplicates_touched(units: Units) -> None:
    await known_lead(units)
    await imported(units, AGAIN, ImportOptions(LeadSource.EVENT, duplicates=DuplicatePolicy.TOUCH))
    finished = await run_all(units)
    assert (finished.created, finished.duplicates) == (1, 2)
    ada = next(lead for lead in units.uow.leads.by_id.values() if lead.email == "ada@acme.example")
    assert ada.touch_count == 2 and ada.touches_by_source == {"trade_show": 1, "event": 1}
    assert ada.contact.phone is None  # a touch changes no field


async def test_duplicates_fill_empty_fields_and_keep_the_others(units: Units) -> None:
    await known_lead(units)
    await imported(units, AGAIN, ImportOptions(LeadSource.EVENT, duplicates=DuplicatePolicy.UPDATE_EMPTY))
    finished = await run_all(units)
    assert (finished.created, finished.duplicates) == (1, 2)
    leads = {lead.email: lead for lead in units.uow.leads.by_id.values()}
    ada = leads["ada@acme.example"]
    assert ada.contact.phone == "+44 20 7946 0958" and ada.company.size == 40
    assert ada.contact.title == "CTO"  # had a value: kept
    assert ada.touch_count == 2
    filled = [c for c in units.uow.history.changes if c.kind is LeadChangeKind.FILLED]
    assert [(c.lead_id, c.details["fields"], c.by) for c in filled] == [
        (ada.id, "contact.phone,company.size", MANAGER)
    ]
    # A repeat within the file fills the new lead's empty fields too.
    new = leads["new@acme.example"]
    assert new.contact.phone == "+49 30 1234567" and new.contact.title == "VP Sales"


async def test_a_fixed_owner_gets_every_new_lead(units: Units) -> None:
    options = ImportOptions(LeadSource.PARTNER, owner="sam@kariz.example")
    await imported(units, people(30), options, chunk_rows=7)
    await run_all(units)
    leads = list(units.uow.leads.by_id.values())
    assert len(leads) == 30 and {(lead.owner, lead.assigned_by) for lead in leads} == {
        ("sam@kariz.example", AssignedBy.MANUAL)
    }
    # Assignment as usual takes turns.
    other = InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(units.clock))  # type: ignore[arg-type]
    await imported(other, people(4))
    await run_all(other)
    assert {lead.owner for lead in other.uow.leads.by_id.values()} == set(TEAM.reps)


class CrashingImports(InMemoryImportJobs):
    """Saves the job's progress, except after chunk ``crash_after``: the unit raises (the worker died)."""

    crash_after: int | None = None

    async def save(self, job: ImportJob) -> None:
        if self.crash_after is not None and job.next_chunk == self.crash_after + 1:
            raise RuntimeError("the worker died before its chunk committed")
        await super().save(job)


async def test_a_worker_that_dies_after_chunk_k_is_resumed_and_every_row_is_stored_once(
    units: Units, clock: FakeClock
) -> None:
    crashing = CrashingImports(units.uow.leads, clock)
    units.uow.imports = crashing
    job = await imported(units, people(1000), chunk_rows=100)
    crashing.crash_after = 4  # chunks 0..3 commit; chunk 4's unit fails with its leads in it
    first = ImportRunner(units, TEAM, SLA, lease=LEASE)
    claimed = await first.claim("worker-a")
    assert claimed is not None
    with pytest.raises(RuntimeError):
        await first.run(claimed, "worker-a")
    stored = units.uow.imports.jobs[job.id]
    assert (stored.next_chunk, stored.processed, stored.created) == (4, 400, 400)
    assert len(units.uow.leads.by_id) == 400  # chunk 4 left nothing
    # A rolled-back unit puts its state back as a copy: the imports kept now are that copy.
    assert isinstance(units.uow.imports, CrashingImports)
    units.uow.imports.crash_after = None
    second = ImportRunner(units, TEAM, SLA, lease=LEASE)
    assert await second.claim("worker-b") is None  # worker a's lease still runs
    clock.advance(LEASE)
    taken = await second.claim("worker-b")
    assert taken is not None and taken.next_chunk == 4
    done = await second.run(taken, "worker-b")
    assert (done.status, done.processed, done.created, done.duplicates) == (ImportStatus.DONE, 1000, 1000, 0)
    emails = [lead.email for lead in units.uow.leads.by_id.values()]
    assert len(emails) == len(set(emails)) == 1000
    assert len(units.of_type(LeadCaptured)) == 1000  # one event per lead, none for the rolled-back chunk
    # The first worker, back from the dead, finds the job taken and changes nothing.
    with pytest.raises(LeaseLost):
        await first.capture_next_chunk(job.id, "worker-a")


async def test_a_worker_whose_lease_was_taken_over_writes_nothing(units: Units, clock: FakeClock) -> None:
    job = await imported(units, people(300), chunk_rows=100)
    a, b = ImportRunner(units, TEAM, SLA, lease=LEASE), ImportRunner(units, TEAM, SLA, lease=LEASE)
    assert await a.claim("a") is not None
    await a.capture_next_chunk(job.id, "a")
    clock.advance(LEASE + timedelta(seconds=1))
    assert (await b.claim("b")) is not None
    with pytest.raises(LeaseLost):
        await a.capture_next_chunk(job.id, "a")
    assert units.uow.imports.jobs[job.id].next_chunk == 1 and len(units.uow.leads.by_id) == 100
    await b.release(job.id, "b")  # a worker that stops hands it back: claimable at once
    again = await a.claim("a")
    assert again is not None and (await a.run(again, "a")).created == 300


async def test_a_job_given_up_is_failed_with_why(units: Units) -> None:
    job = await imported(units, people(10))
    runner = ImportRunner(units, TEAM, SLA, lease=LEASE)
    assert await runner.claim("a") is not None
    await runner.fail(job.id, "a", "chunk 1 of 1 failed 3 times: boom")
    stored = units.uow.imports.jobs[job.id]
    assert (stored.status, stored.error) == (ImportStatus.FAILED, "chunk 1 of 1 failed 3 times: boom")
    assert await runner.claim("a") is None


# --- files that never got their job --------------------------------------------------------------


async def test_an_upload_that_fails_before_its_job_is_stored_leaves_no_chunks(
    units: Units, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def database_gone(job: ImportJob) -> None:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(units.uow.imports, "add", database_gone)
    with pytest.raises(ConnectionError):
        await imported(units, people(1200), chunk_rows=500)
    assert units.uow.imports.chunks == {} and units.uow.imports.jobs == {}


async def test_the_sweep_deletes_only_files_that_have_had_no_job_for_a_while(
    units: Units, clock: FakeClock
) -> None:
    kept = await imported(units, people(3))

    async def orphan(uow: InMemoryLeadsUnitOfWork) -> None:
        # The chunks of an upload whose replica died before it stored the job.
        uow.imports.add_chunks("dead-upload", 0, [()])

    await units.run(orphan)
    runner = ImportRunner(units, TEAM, SLA, lease=LEASE)
    clock.advance(ORPHAN_AGE - timedelta(seconds=1))
    assert await runner.sweep_orphans() == 0  # it may still be uploading
    clock.advance(timedelta(seconds=2))
    assert await runner.sweep_orphans() == 1
    assert {job for job, _ in units.uow.imports.chunks} == {kept.id}
    assert await runner.sweep_orphans() == 0
