"""``kariz-import``: uploads the file as a text/csv body with its options, follows the job to its end,
and prints the counts and the failed rows; a refused file exits 1 with the service's reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from kariz_loadgen.imports import parser, run


def job(status: str, processed: int, failed: int = 0) -> dict[str, Any]:
    return {
        "id": "job-1",
        "status": status,
        "encoding": "utf-8",
        "delimiter": ";",
        "columns": {"email": "E-Mail", "company": "Firma"},
        "error": None,
        "rows": {
            "total": 4,
            "processed": processed,
            "created": processed - failed,
            "duplicates": 0,
            "failed": failed,
        },
    }


async def test_it_uploads_follows_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "visitors.csv"
    file.write_bytes(b"E-Mail;Firma\n")
    states = iter([job("running", 2), job("done", 4, failed=1)])
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(202, json=job("queued", 0))
        if request.url.path.endswith("/failures"):
            return httpx.Response(200, text="row,email,reason\r\n3,x,email: not an address\r\n")
        return httpx.Response(200, json=next(states))

    args = parser().parse_args(
        [str(file), "--source", "trade_show", "--campaign", "cebit", "--map", "company:Firma", "--token", "t"]
    )
    args.poll_s = 0.01
    assert await run(args, httpx.MockTransport(answer)) == 0
    upload = seen[0]
    assert upload.headers["content-type"] == "text/csv" and upload.headers["authorization"] == "Bearer t"
    assert upload.content == b"E-Mail;Firma\n"
    assert dict(upload.url.params) == {
        "source": "trade_show",
        "filename": "visitors.csv",
        "campaign": "cebit",
        "map": "company:Firma",
    }
    out = capsys.readouterr()
    assert "done: 3 created, 0 duplicates, 1 failed of 4" in out.out
    assert "3,x,email: not an address" in out.out
    assert "4/4 rows" in out.err


async def test_a_refused_file_exits_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "bad.csv"
    file.write_bytes(b"nothing")

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            422, json={"error": "rule_violation", "message": "columns: no column for e-mail"}
        )

    args = parser().parse_args([str(file), "--source", "event", "--token", "t"])
    assert await run(args, httpx.MockTransport(answer)) == 1
    assert "refused (422): columns: no column for e-mail" in capsys.readouterr().err
