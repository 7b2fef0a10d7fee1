"""``kariz-import FILE --source trade_show``: upload a CSV file (or an XLSX workbook) of leads to
``POST /imports`` and show its progress until the import is done; then its counts, and where to get
the failed rows.

    kariz-import visitors.csv --source trade_show --campaign cebit-2026 \\
        [--owner rep@...] [--on-duplicate skip|touch|update_empty] [--delimiter ';'] [--encoding cp1252] \\
        [--map email:"Work E-mail" ...] [--failures failed.csv] [--url http://127.0.0.1:8001] [--token T]

The token is a manager's or an admin's (``--token`` or ``KARIZ_TOKEN``; in dev
``kariz-dev token --user maria@kariz.example --role manager --team emea``). Exit status: 0 when the
import is done (rows may have failed: they are listed), 1 when it failed or was refused, 2 on usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from kariz_loadgen.progress import Progress

DUPLICATE_POLICIES = ("skip", "touch", "update_empty")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def run(args: argparse.Namespace, transport: httpx.AsyncBaseTransport | None = None) -> int:
    path = Path(args.file)
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("source", args.source),
        ("filename", path.name),
    ]
    for name in ("campaign", "owner", "on_duplicate", "delimiter", "encoding"):
        value = getattr(args, name)
        if value:
            params.append((name, value))
    params += [("map", pair) for pair in args.map]
    kind = XLSX if path.suffix.lower() == ".xlsx" else "text/csv"
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": kind}
    base = args.url.rstrip("/")
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=args.timeout, transport=transport
    ) as http:
        answer = await http.post("/imports", params=params, content=path.read_bytes())
        if answer.status_code != 202:
            print(f"refused ({answer.status_code}): {_message(answer)}", file=sys.stderr)
            return 1
        job: dict[str, Any] = answer.json()
        print(
            f"import {job['id']}: {job['rows']['total']:,} rows ({job['encoding']}, "
            f"delimiter {job['delimiter']!r}, columns {', '.join(job['columns'])})",
            file=sys.stderr,
        )
        progress = Progress(job["rows"]["total"], unit="rows", detail=lambda: _detail(job))
        async with progress.running():
            while job["status"] not in ("done", "failed"):
                await asyncio.sleep(args.poll_s)
                reply = await http.get(f"/imports/{job['id']}")
                if reply.status_code != 200:
                    print(
                        f"\ncannot read the import ({reply.status_code}): {_message(reply)}", file=sys.stderr
                    )
                    return 1
                job = reply.json()
                progress.done = job["rows"]["processed"]
        rows = job["rows"]
        print(
            f"{job['status']}: {rows['created']:,} created, {rows['duplicates']:,} duplicates, "
            f"{rows['failed']:,} failed of {rows['total']:,}"
        )
        if job["status"] == "failed":
            print(f"the import stopped: {job['error']}", file=sys.stderr)
        if rows["failed"]:
            failures = await http.get(f"/imports/{job['id']}/failures", params={"format": "csv"})
            if args.failures:
                Path(args.failures).write_bytes(failures.content)
                print(f"failed rows written to {args.failures}")
            else:
                lines = failures.text.splitlines()
                print("\n".join(lines[:11]) + ("\n..." if len(lines) > 11 else ""))
        return 0 if job["status"] == "done" else 1


def _detail(job: dict[str, Any]) -> str:
    rows = job["rows"]
    counts = f"created {rows['created']:,}  duplicates {rows['duplicates']:,}  failed {rows['failed']:,}"
    return f"{job['status']}  {counts}"


def _message(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("message", answer.text))
    except ValueError:
        return answer.text


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kariz-import", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", help="the CSV file")
    parser.add_argument("--source", required=True, help="trade_show, event, partner, purchased_list, ...")
    parser.add_argument("--campaign", default="")
    parser.add_argument("--owner", default="", help="a rep to own every new lead (default: assignment)")
    parser.add_argument("--on-duplicate", dest="on_duplicate", choices=DUPLICATE_POLICIES, default="")
    parser.add_argument("--delimiter", default="", help="default: sniffed; 'tab' for a tab")
    parser.add_argument("--encoding", default="", help="default: UTF-8 (with or without BOM) or Windows-1252")
    parser.add_argument(
        "--map", action="append", default=[], metavar="FIELD:HEADER", help="a column mapping; repeat it"
    )
    parser.add_argument("--failures", default="", help="write the failed rows (CSV) to this file")
    parser.add_argument("--url", default=os.environ.get("KARIZ_LEADS_URL", "http://127.0.0.1:8001"))
    parser.add_argument("--token", default=os.environ.get("KARIZ_TOKEN", ""), help="default $KARIZ_TOKEN")
    parser.add_argument("--poll-s", type=float, default=0.5, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=300.0, help=argparse.SUPPRESS)
    return parser


def main() -> None:
    parsing = parser()
    args = parsing.parse_args()
    if not args.token:
        parsing.error("a token is needed: --token or KARIZ_TOKEN (in dev: kariz-dev token --role manager)")
    if not Path(args.file).is_file():
        parsing.error(f"no file {args.file}")
    try:
        sys.exit(asyncio.run(run(args)))
    except httpx.HTTPError as exc:
        print(f"cannot reach {args.url}: {exc}", file=sys.stderr)
        sys.exit(1)
