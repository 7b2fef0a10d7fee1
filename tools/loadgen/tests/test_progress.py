"""The progress bar and the check that Kariz is running before a demo."""

from __future__ import annotations

import argparse
import io

import pytest
from kariz_loadgen.cli import NOT_RUNNING, not_ready, run
from kariz_loadgen.journey import DEFAULT_URLS
from kariz_loadgen.population import run_campaign, source_of_run_campaign
from kariz_loadgen.progress import Progress, progress_line

from kariz_devkit.embedded import free_port


def test_the_line_shows_done_total_rate_and_elapsed() -> None:
    assert progress_line(120, 300, 8.0, width=10) == "[####......] 120/300 leads  15.0/s  0:08"
    assert progress_line(0, 300, 0.0, width=4) == "[....]   0/300 leads  0.0/s  0:00"
    assert progress_line(5, 5, 75.0, width=4, detail="won 2") == "[####] 5/5 leads  0.1/s  1:15  won 2"


async def test_in_a_log_each_draw_is_a_line_of_its_own() -> None:
    out = io.StringIO()
    progress = Progress(3, stream=out, tty=False, every_s=3600, detail=lambda: "won 1")
    async with progress.running():
        for _ in range(3):
            progress.advance()
    progress.draw()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert all(line.startswith("[" + "#" * 30 + "] 3/3 leads") and line.endswith("won 1") for line in lines)


async def test_on_a_terminal_the_line_is_redrawn_in_place() -> None:
    out = io.StringIO()
    progress = Progress(4, stream=out, tty=True, tick_s=3600)
    async with progress.running():
        progress.advance()
        progress.draw()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "1/4 leads" in text


def test_a_run_tag_picks_the_run_campaigns_only() -> None:
    assert run_campaign("3db91288", "web_form") == "demo-3db91288-web_form"
    assert source_of_run_campaign("demo-3db91288-web_form", "3db91288") == "web_form"
    assert source_of_run_campaign("demo-3db91289-web_form", "3db91288") is None
    assert source_of_run_campaign("spring-webinar", "3db91288") is None
    assert source_of_run_campaign("demo-3db91288-", "3db91288") is None


async def test_nothing_listening_means_not_running(capsys: pytest.CaptureFixture[str]) -> None:
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in DEFAULT_URLS}
    problems = await not_ready(urls)
    assert [p.split(" ")[0] for p in problems] == list(DEFAULT_URLS)
    args = argparse.Namespace(leads=5, concurrency=2, seed=1, **{f"{n}_url": u for n, u in urls.items()})
    assert await run(args) == NOT_RUNNING
    err = capsys.readouterr().err
    assert "Kariz is not running" in err and "make run" in err
