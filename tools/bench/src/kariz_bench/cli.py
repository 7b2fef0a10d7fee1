"""``kariz-bench``: see the README's "Performance" section."""

from __future__ import annotations


def main() -> None:
    raise SystemExit("kariz-bench is being built")
