"""The bench's picture: throughput over time and the latency distribution, one line per phase, so a
stall or a slowdown shows at a glance (issue H). Drawn with matplotlib from the JSON ``kariz-bench``
writes, beside it as SVG; ``python -m kariz_bench.picture bench-results.json`` draws it again."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

import matplotlib.pyplot as plt

#: The phases with a timeline, as the JSON's ``details`` names them, and their labels.
PHASES = {
    "one_replica": "Kariz, 1 replica",
    "two_replicas": "Kariz, 2 replicas",
    "latency": "latency phase (one by one, open loop)",
}


def smoothed(counts: list[int], window: int = 5) -> list[float]:
    """A trailing average over ``window`` seconds: single seconds jitter with the consumers' batches."""
    out, total = [], 0
    for i, n in enumerate(counts):
        total += n
        if i >= window:
            total -= counts[i - window]
        out.append(total / min(i + 1, window))
    return out


def draw(results: dict[str, Any], path: Path) -> Path:
    """Draw the picture of ``results`` (``kariz-bench``'s JSON) to ``path``; returns the path."""
    details = results.get("details") or {}
    figure, (over_time, latency) = plt.subplots(1, 2, figsize=(13, 4.8))
    for key, label in PHASES.items():
        phase = details.get(key) or {}
        if counts := phase.get("deals_per_second"):
            over_time.plot(range(len(counts)), smoothed(counts), label=label)
        if curve := phase.get("to_deal_opened_distribution_ms"):
            share = [i / (len(curve) - 1) * 100 for i in range(len(curve))]
            latency.plot(curve, share, label=label)
    raw = details.get("raw") or {}
    if raw.get("leads_per_second"):
        over_time.axhline(
            raw["leads_per_second"], linestyle="--", color="grey", label="raw ceiling (its average)"
        )
    over_time.set(
        title="Throughput over time",
        xlabel="seconds from the first lead sent",
        ylabel="deals opened / s (5-s average)",
    )
    latency.set(
        title="Capture -> deal opened",
        xlabel="ms (log scale)",
        ylabel="% of leads at or under",
        xscale="log",
        ylim=(0, 100),
    )
    for axes in (over_time, latency):
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend(loc="best", fontsize="small")
    run = results.get("run") or {}
    figure.suptitle(f"{run.get('command', 'kariz-bench')}  ({run.get('at', '')})", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0] if args else "bench-results.json")
    target = Path(args[1]) if len(args) > 1 else source.with_suffix(".svg")
    print(f"drawn to {draw(json.loads(source.read_text()), target)}")


if __name__ == "__main__":
    main()
