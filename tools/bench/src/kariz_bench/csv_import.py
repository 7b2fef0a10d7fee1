"""The ``import`` phase: a generated CSV file (100,000 rows by default) uploaded to ``POST /imports`` of
a running stack and followed to done; rows/s from the upload to the job's end, and of the worker alone
(from the job's start to its end, the upload and the file's reading left out)."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

INDUSTRIES = ("software", "manufacturing", "financial_services", "retail", "healthcare", "logistics")
COUNTRIES = ("DE", "GB", "FR", "US", "NL", "SE", "ES", "IT")


@dataclass
class CsvImportRun:
    rows: int
    megabytes: float
    upload_s: float
    elapsed_s: float
    rows_per_second: float
    worker_rows_per_second: float
    created: int
    failed: int


def generated_csv(rows: int, tag: str) -> bytes:
    """A trade-show list with the headers exports have (E-Mail, First Name, ...), UTF-8 with a BOM."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["E-Mail", "First Name", "Last Name", "Job Title", "Company", "Employees", "Country", "Industry"]
    )
    for n in range(rows):
        firm = n % 997
        writer.writerow(
            [
                f"visitor{n}.{tag}@firm{firm}.example",
                f"Visitor{n}",
                "Lovelace",
                "Head of Operations" if n % 3 else "CTO",
                f"Firm {firm}",
                10 + (n * 37) % 5000,
                COUNTRIES[n % len(COUNTRIES)],
                INDUSTRIES[n % len(INDUSTRIES)],
            ]
        )
    return out.getvalue().encode("utf-8-sig")


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def csv_import(
    http: httpx.AsyncClient, leads_url: str, *, rows: int, tag: str, stall_s: float
) -> CsvImportRun:
    data = generated_csv(rows, tag)
    started = time.monotonic()
    answer = await http.post(
        f"{leads_url}/imports",
        params={"source": "trade_show", "campaign": f"bench-{tag}", "filename": "bench.csv"},
        content=data,
        headers={"Content-Type": "text/csv"},
    )
    answer.raise_for_status()
    uploaded = time.monotonic()
    job: dict[str, Any] = answer.json()
    last, moved = job["rows"]["processed"], time.monotonic()
    while job["status"] not in ("done", "failed"):
        await asyncio.sleep(0.5)
        reply = await http.get(f"{leads_url}/imports/{job['id']}")
        reply.raise_for_status()
        job = reply.json()
        if job["rows"]["processed"] != last:
            last, moved = job["rows"]["processed"], time.monotonic()
        elif time.monotonic() - moved > stall_s:
            raise RuntimeError(f"the import made no progress for {stall_s:.0f} s: {job}")
    elapsed = time.monotonic() - started
    if job["status"] != "done":
        raise RuntimeError(f"the import failed: {job['error']}")
    worker_s = (_at(job["finished_at"]) - _at(job["created_at"])).total_seconds()
    return CsvImportRun(
        rows=job["rows"]["total"],
        megabytes=round(len(data) / 2**20, 1),
        upload_s=round(uploaded - started, 2),
        elapsed_s=round(elapsed, 1),
        rows_per_second=round(job["rows"]["total"] / elapsed, 1),
        worker_rows_per_second=round(job["rows"]["total"] / worker_s, 1) if worker_s > 0 else 0.0,
        created=job["rows"]["created"],
        failed=job["rows"]["failed"],
    )
