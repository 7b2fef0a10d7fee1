"""CSV imports: a file read into rows of lead fields, and the import job that captures them in chunks.
An XLSX workbook's first sheet is read as a CSV file's rows are (openpyxl, read-only).

Reading a file (:func:`read_csv`) decides everything that can be wrong with the file as a whole before
anything is stored: its encoding (UTF-8, with or without a BOM, or else Windows-1252, the two that
spreadsheets write; any other named explicitly), its delimiter (given, or sniffed among ``, ; tab |``
and checked against the required columns), its columns (recognised headers, case, spacing and
punctuation aside, with common synonyms, or an explicit mapping) and its size. What is wrong with one
row (a bad address, a blank company) is that row's failure, found when its chunk is captured
(:func:`row_details`), with the row's number as a spreadsheet shows it (the header is row 1).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import openpyxl

from kariz_leads.domain.intake import InvalidField, LeadDetails
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import Company, Contact, LeadSource

#: Rows captured together, in one unit of work: all of a chunk's leads, or none.
CHUNK_ROWS = 500
MAX_ROWS = 100_000
MAX_BYTES = 50 * 1024 * 1024
#: A cell is kept up to this many characters: longer than any lead field may be, so it still fails.
CELL_KEPT = 1_000
DELIMITERS = ",;\t|"
#: How a zip archive starts, as an XLSX workbook does.
ZIP = b"PK\x03\x04"
#: Columns of a workbook's sheet looked at: far more than any export has.
SHEET_COLUMNS = 200


class Column(StrEnum):
    FIRST_NAME = "first_name"
    LAST_NAME = "last_name"
    FULL_NAME = "full_name"
    EMAIL = "email"
    PHONE = "phone"
    TITLE = "title"
    COMPANY = "company"
    DOMAIN = "domain"
    INDUSTRY = "industry"
    SIZE = "size"
    COUNTRY = "country"
    CONSENT = "consent"


def header_key(header: str) -> str:
    """A header as it is recognised: case, spacing and punctuation aside (``E-Mail Address`` is
    ``emailaddress``)."""
    return re.sub(r"[^0-9a-z]", "", header.casefold().replace("\ufeff", ""))


_SYNONYMS: dict[Column, tuple[str, ...]] = {
    Column.FIRST_NAME: ("first name", "firstname", "first", "given name", "forename", "vorname"),
    Column.LAST_NAME: ("last name", "lastname", "last", "surname", "family name", "nachname"),
    Column.FULL_NAME: ("full name", "name", "contact name", "contact", "person"),
    Column.EMAIL: (
        "email",
        "e-mail",
        "email address",
        "e-mail address",
        "mail",
        "work email",
        "business email",
        "contact email",
    ),
    Column.PHONE: ("phone", "phone number", "telephone", "tel", "mobile", "mobile phone", "work phone"),
    Column.TITLE: ("title", "job title", "position", "job", "role", "job role"),
    Column.COMPANY: (
        "company",
        "company name",
        "organisation",
        "organization",
        "organisation name",
        "organization name",
        "account",
        "account name",
        "employer",
        "firma",
    ),
    Column.DOMAIN: ("domain", "company domain", "website", "web site", "company website", "url", "web"),
    Column.INDUSTRY: ("industry", "sector", "vertical", "branche"),
    Column.SIZE: (
        "size",
        "company size",
        "employees",
        "number of employees",
        "no of employees",
        "employee count",
        "headcount",
    ),
    Column.COUNTRY: ("country", "country code", "nation", "land"),
    Column.CONSENT: ("consent", "opt in", "email opt in", "marketing consent", "gdpr consent", "permission"),
}
RECOGNISED: dict[str, Column] = {header_key(s): c for c, synonyms in _SYNONYMS.items() for s in synonyms}


class DuplicatePolicy(StrEnum):
    """What a row whose address is a lead already does: nothing, a touch (as a capture does), or a touch
    that also fills the lead's empty fields from the row."""

    SKIP = "skip"
    TOUCH = "touch"
    UPDATE_EMPTY = "update_empty"


class ImportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class InvalidFile(RuleViolation):
    """The file as a whole cannot be imported (encoding, delimiter, columns, size); nothing was stored."""


@dataclass(frozen=True)
class Row:
    """One data row: its number in the file (the header is row 1) and its cells by column."""

    number: int
    cells: Mapping[Column, str]


@dataclass(frozen=True)
class CsvFile:
    """A file read whole: how it was read, which header went to which column, and its data rows."""

    encoding: str
    delimiter: str
    columns: Mapping[Column, str]  # the column and the file's header for it
    rows: tuple[Row, ...]


# --- reading a file ------------------------------------------------------------------------------


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """The file's text and the encoding it was read with. Without ``encoding``: a UTF-16 or UTF-8 BOM
    says so; else UTF-8 if it decodes, else Windows-1252 (what Excel writes on Windows). Binary data (a
    spreadsheet's zip, a PDF) is refused, as is text that does not decode in the named encoding."""
    if data.startswith(ZIP):
        raise InvalidFile("the file is a zip archive, not CSV text or an XLSX workbook")
    if encoding is not None:
        try:
            name = codecs.lookup(encoding).name
        except (LookupError, ValueError):  # ValueError: a name with a NUL character (found by fuzzing)
            raise InvalidFile(f"encoding: {encoding!r} is not an encoding Kariz knows") from None
        candidates = ["utf-8-sig" if name == "utf-8" else name]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8-sig", "cp1252"]
    for name in candidates:
        try:
            text = data.decode(name)
        except UnicodeDecodeError as exc:
            if name == candidates[-1]:
                line = data[: exc.start].count(b"\n") + 1
                raise InvalidFile(
                    f"encoding: the file is not {_label(name)} text (byte {exc.start}, line {line}); "
                    "save it as UTF-8 or name its encoding"
                ) from None
            continue
        except (UnicodeError, LookupError):  # a codec that is not a text encoding (base64, rot13)
            raise InvalidFile(f"encoding: the file cannot be read as {encoding!r} text") from None
        if "\x00" in text or _CONTROL.search(text):
            raise InvalidFile(
                "encoding: the file holds binary data, not CSV text: save it as CSV (UTF-8) or name its "
                "encoding"
            )
        return text, _label(name)
    raise AssertionError("unreachable")  # pragma: no cover


_CONTROL = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f]")


def _label(codec: str) -> str:
    return {"utf-8-sig": "utf-8", "cp1252": "windows-1252"}.get(codec, codec)


def resolve_columns(headers: Sequence[str], mapping: Mapping[str, str] | None = None) -> dict[Column, int]:
    """Which cell of a row holds each column: from ``mapping`` (column -> the file's header) first, then
    the recognised headers. ``InvalidFile`` for an unknown column or header in the mapping, a column
    given twice, and a missing required column (e-mail, first and last name or a full name, company)."""
    at = {header_key(h): n for n, h in reversed(list(enumerate(headers))) if header_key(h)}
    columns: dict[Column, int] = {}
    for name, header in (mapping or {}).items():
        try:
            column = Column(name.strip().lower())
        except ValueError:
            known = ", ".join(c.value for c in Column)
            raise InvalidFile(f"mapping: {name!r} is not a lead field (one of {known})") from None
        if header_key(header) not in at:
            raise InvalidFile(f"mapping: the file has no column {header!r} (it has {_listed(headers)})")
        columns[column] = at[header_key(header)]
    taken = set(columns.values())
    for n, header in enumerate(headers):
        recognised = RECOGNISED.get(header_key(header))
        if recognised is not None and recognised not in columns and n not in taken:
            columns[recognised] = n
            taken.add(n)
    if Column.FULL_NAME in columns and {Column.FIRST_NAME, Column.LAST_NAME} <= columns.keys():
        del columns[Column.FULL_NAME]
    missing = [
        label
        for label, present in (
            ("e-mail", Column.EMAIL in columns),
            (
                "first name and last name (or a full name)",
                {Column.FIRST_NAME, Column.LAST_NAME} <= columns.keys() or Column.FULL_NAME in columns,
            ),
            ("company", Column.COMPANY in columns),
        )
        if not present
    ]
    if missing:
        raise InvalidFile(
            f"columns: the file has no column for {' and '.join(missing)} (its header: {_listed(headers)}); "
            "name the headers (mapping) or use recognised ones"
        )
    return columns


def _listed(headers: Sequence[str]) -> str:
    shown = ", ".join(repr(h) for h in headers[:12])
    return shown + (", ..." if len(headers) > 12 else "") if headers else "nothing"


def sniff_delimiter(text: str) -> str | None:
    """The delimiter ``csv.Sniffer`` finds in the file's first lines, among ``, ; tab |``; None if none."""
    sample = "\n".join(text[: 64 * 1024].splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return None


def _header(text: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True), [])
    except csv.Error:
        return []


def _with_delimiter_hint(exc: InvalidFile, header: list[str], used: str) -> InvalidFile:
    """A header read as one column that holds another delimiter: say so."""
    others = [d for d in DELIMITERS if d != used and len(header) == 1 and d in header[0]]
    if not others:
        return exc
    return InvalidFile(f"{exc}; the delimiter may be {others[0]!r}, not {used!r}: pass delimiter=")


def read_csv(
    data: bytes,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    mapping: Mapping[str, str] | None = None,
    max_rows: int = MAX_ROWS,
) -> CsvFile:
    """The file's rows of lead fields, or ``InvalidFile`` saying what to fix. Blank rows (and rows of
    empty cells, as spreadsheets export) are left out; cells beyond the header's are ignored."""
    text, used = decode(data, encoding)
    if not text.strip():
        raise InvalidFile("the file is empty")
    if delimiter is not None:
        if len(delimiter) != 1 or delimiter in '"\r\n':
            raise InvalidFile(
                f"delimiter: {delimiter!r} is not a delimiter: one character, e.g. ',' ';' or a tab"
            )
        chosen = delimiter
        try:
            columns = resolve_columns(_header(text, chosen), mapping)
        except InvalidFile as exc:
            raise _with_delimiter_hint(exc, _header(text, chosen), chosen) from None
    else:
        sniffed = sniff_delimiter(text)
        order = [sniffed] if sniffed else []
        order += [d for d in DELIMITERS if d != sniffed]
        first: InvalidFile | None = None
        for candidate in order:
            try:
                columns = resolve_columns(_header(text, candidate), mapping)
            except InvalidFile as exc:
                first = first or exc
                continue
            chosen = candidate
            break
        else:
            assert first is not None
            raise _with_delimiter_hint(first, _header(text, order[0]), order[0]) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=chosen, strict=True)
    try:
        headers = next(reader)
        rows = _rows(reader, columns, max_rows)
    except csv.Error as exc:
        raise InvalidFile(f"the file is not valid CSV at line {reader.line_num}: {exc}") from None
    return CsvFile(used, chosen, {c: headers[n] for c, n in columns.items()}, rows)


def _rows(records: Iterator[list[str]], columns: Mapping[Column, int], max_rows: int) -> tuple[Row, ...]:
    """The data rows after the header, numbered as a spreadsheet numbers them (the header is row 1)."""
    rows: list[Row] = []
    for number, record in enumerate(records, start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(rows) == max_rows:
            raise InvalidFile(f"the file has more than {max_rows} rows: split it")
        cells = {c: record[n][:CELL_KEPT] if n < len(record) else "" for c, n in columns.items()}
        rows.append(Row(number, cells))
    if not rows:
        raise InvalidFile("the file has a header but no rows")
    return tuple(rows)


def read_file(
    data: bytes,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    mapping: Mapping[str, str] | None = None,
    max_rows: int = MAX_ROWS,
) -> CsvFile:
    """A CSV file (:func:`read_csv`), or an XLSX workbook's first sheet (:func:`read_xlsx`), told apart
    by how the data starts."""
    if data.startswith(ZIP):
        return read_xlsx(data, mapping=mapping, max_rows=max_rows)
    return read_csv(data, encoding=encoding, delimiter=delimiter, mapping=mapping, max_rows=max_rows)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def read_xlsx(data: bytes, *, mapping: Mapping[str, str] | None = None, max_rows: int = MAX_ROWS) -> CsvFile:
    """The first sheet of an XLSX workbook as rows (its first row the header), read with openpyxl in
    read-only mode, values as Excel shows them (a number without its ``.0``)."""
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises what the zip and XML libraries raise for a broken file
        raise InvalidFile(
            "the file is a zip archive but not an XLSX workbook: save it as CSV or XLSX"
        ) from None
    try:
        if not workbook.worksheets:
            raise InvalidFile("the workbook has no sheet")
        sheet = workbook.worksheets[0]
        records = (
            [_text(v) for v in values] for values in sheet.iter_rows(max_col=SHEET_COLUMNS, values_only=True)
        )
        headers = next(records, [])
        while headers and not headers[-1].strip():
            headers.pop()
        if not headers:
            raise InvalidFile("the workbook's first sheet is empty")
        columns = resolve_columns(headers, mapping)
        rows = _rows(records, columns, max_rows)
    finally:
        workbook.close()
    return CsvFile("xlsx", "", {c: headers[n] for c, n in columns.items()}, rows)


# --- one row -------------------------------------------------------------------------------------


class InvalidRow(ValueError):
    """Why one row cannot be a lead: ``field`` (``email``, ``company.size``) and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


_FIELD_OF_LEAD = {
    "contact.first_name": "first_name",
    "contact.last_name": "last_name",
    "contact.email": "email",
    "contact.phone": "phone",
    "contact.title": "title",
    "company.name": "company",
    "company.domain": "domain",
    "company.industry": "industry",
    "company.size": "size",
    "company.country": "country",
}
_LONGEST = {
    Column.FIRST_NAME: 100,
    Column.LAST_NAME: 100,
    Column.FULL_NAME: 201,
    Column.EMAIL: 320,
    Column.PHONE: 40,
    Column.TITLE: 120,
    Column.COMPANY: 200,
    Column.DOMAIN: 255,
    Column.INDUSTRY: 100,
    Column.SIZE: 20,
    Column.COUNTRY: 60,
    Column.CONSENT: 20,
}
_YES = frozenset({"1", "true", "yes", "y", "x", "ja", "j", "oui", "si", "optedin", "optin"})
_NO = frozenset({"", "0", "false", "no", "n", "nein", "non", "optedout", "optout"})


def _size(value: str) -> int | None:
    cleaned = re.sub(r"[\s,'_]", "", value)
    if not cleaned:
        return None
    if cleaned.endswith(".0"):
        cleaned = cleaned[:-2]
    if not cleaned.isdigit():
        raise InvalidRow("size", f"{value.strip()!r} is not a number of employees")
    size = int(cleaned)
    if not 1 <= size <= 100_000_000:
        raise InvalidRow("size", f"{size} is not a number of employees (1 to 100,000,000)")
    return size


def row_details(row: Row, campaign: str | None) -> LeadDetails:
    """The row's lead details, normalised as a capture's are, or ``InvalidRow`` naming the column."""
    cells = row.cells
    for column, longest in _LONGEST.items():
        if len(cells.get(column, "")) > longest:
            raise InvalidRow(column.value, f"longer than {longest} characters")
    first, last = cells.get(Column.FIRST_NAME, ""), cells.get(Column.LAST_NAME, "")
    if not (first.strip() and last.strip()) and cells.get(Column.FULL_NAME, "").strip():
        given, _, family = cells[Column.FULL_NAME].strip().rpartition(" ")
        first, last = (first.strip() or given), (last.strip() or family)
    if not cells.get(Column.EMAIL, "").strip():
        raise InvalidRow("email", "blank: an e-mail address is required")
    contact = Contact(
        first_name=first,
        last_name=last,
        email=cells[Column.EMAIL],
        phone=cells.get(Column.PHONE) or None,
        title=cells.get(Column.TITLE) or None,
    )
    company = Company(
        name=cells.get(Column.COMPANY, ""),
        domain=cells.get(Column.DOMAIN) or None,
        industry=cells.get(Column.INDUSTRY) or None,
        size=_size(cells.get(Column.SIZE, "")),
        country=cells.get(Column.COUNTRY) or None,
    )
    try:
        return LeadDetails.clean(contact, company, campaign)
    except InvalidField as exc:
        raise InvalidRow(_FIELD_OF_LEAD.get(exc.field, exc.field), exc.reason) from None


def row_consent(row: Row) -> bool:
    """Whether the row says the contact agreed to be contacted (yes/no, true/false, 1/0, x; blank: no)."""
    value = row.cells.get(Column.CONSENT, "")
    key = header_key(value)
    if key in _YES:
        return True
    if key in _NO:
        return False
    raise InvalidRow("consent", f"{value.strip()!r} is not yes or no")


def filled(known: Contact, known_company: Company, row: LeadDetails) -> tuple[Contact, Company, list[str]]:
    """A known lead's contact and company with their empty fields taken from ``row``, and which fields
    those were (``contact.phone``); a field that has a value keeps it."""
    names: list[str] = []
    contact_changes = {
        name: getattr(row.contact, name)
        for name in ("phone", "title")
        if getattr(known, name) is None and getattr(row.contact, name) is not None
    }
    company_changes = {
        name: getattr(row.company, name)
        for name in ("domain", "industry", "size", "country")
        if getattr(known_company, name) is None and getattr(row.company, name) is not None
    }
    names += [f"contact.{n}" for n in contact_changes] + [f"company.{n}" for n in company_changes]
    return (
        known.model_copy(update=contact_changes),
        known_company.model_copy(update=company_changes),
        names,
    )


# --- the job -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportOptions:
    """What every row of an import gets: its source and campaign, its owner (None: assigned as a
    capture is), and what a row whose address is a lead already does."""

    source: LeadSource
    campaign: str | None = None
    owner: str | None = None
    duplicates: DuplicatePolicy = DuplicatePolicy.TOUCH


@dataclass(frozen=True)
class RowFailure:
    row: int
    reason: str
    email: str | None = None


@dataclass(frozen=True)
class ChunkOutcome:
    """What one chunk's rows became."""

    created: int = 0
    duplicates: int = 0
    failures: tuple[RowFailure, ...] = ()

    @property
    def failed(self) -> int:
        return len(self.failures)


class LeaseLost(Exception):
    """Another worker holds the job now (this one's lease ran out): this worker stops, changing nothing."""


@dataclass
class ImportJob:
    """One uploaded file and how far its capture got. ``next_chunk`` is the first chunk not yet
    captured; it moves in the same unit of work as the chunk's leads, so a resumed job starts there."""

    id: str
    filename: str | None
    started_by: str
    on_behalf_of: str | None
    options: ImportOptions
    encoding: str
    delimiter: str
    columns: dict[str, str]
    rows_total: int
    chunks_total: int
    correlation_id: str
    created_at: datetime
    updated_at: datetime
    status: ImportStatus = ImportStatus.QUEUED
    next_chunk: int = 0
    processed: int = 0
    created: int = 0
    duplicates: int = 0
    failed: int = 0
    error: str | None = None
    finished_at: datetime | None = None
    claimed_by: str | None = None
    claim_until: datetime | None = field(default=None)

    @property
    def progress(self) -> float:
        """From 0 to 1: rows processed of the total."""
        return round(self.processed / self.rows_total, 4) if self.rows_total else 1.0

    @property
    def finished(self) -> bool:
        return self.status in (ImportStatus.DONE, ImportStatus.FAILED)

    def claimable(self, now: datetime) -> bool:
        return not self.finished and (self.claim_until is None or self.claim_until <= now)

    def claim(self, token: str, now: datetime, lease: timedelta) -> None:
        self.claimed_by, self.claim_until = token, now + lease
        self.status, self.updated_at = ImportStatus.RUNNING, now

    def held_by(self, token: str) -> None:
        if self.claimed_by != token:
            raise LeaseLost(f"import {self.id} is held by another worker now")

    def advance(self, outcome: ChunkOutcome, rows: int, now: datetime, lease: timedelta) -> None:
        """One more chunk captured (``rows`` rows): counts on, the lease renewed, done after the last."""
        self.next_chunk += 1
        self.processed += rows
        self.created += outcome.created
        self.duplicates += outcome.duplicates
        self.failed += outcome.failed
        self.updated_at = now
        self.claim_until = now + lease
        if self.next_chunk >= self.chunks_total:
            self.status, self.finished_at = ImportStatus.DONE, now
            self.claimed_by = self.claim_until = None

    def release(self) -> None:
        """Hand the job back (a worker that stops): another takes it at once."""
        self.claimed_by = self.claim_until = None

    def fail(self, reason: str, now: datetime) -> None:
        self.status, self.error, self.finished_at, self.updated_at = ImportStatus.FAILED, reason, now, now
        self.claimed_by = self.claim_until = None


def chunked(rows: Sequence[Row], size: int = CHUNK_ROWS) -> list[tuple[Row, ...]]:
    if size < 1:
        raise ValueError("a chunk holds at least one row")
    return [tuple(rows[start : start + size]) for start in range(0, len(rows), size)]
