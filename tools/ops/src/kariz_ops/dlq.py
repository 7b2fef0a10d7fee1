"""kariz-dlq: list the dead letters, and replay chosen ones once their cause is fixed.

  kariz-dlq list [--topic kariz.lead-captured.v1] [--reason REASON] [--group GROUP] [--json]
  kariz-dlq replay --topic kariz.lead-captured.v1.dlq (--offset [PARTITION:]OFFSET ... | --all | --reason R)
                   [--group GROUP] [--dry-run]

list reads every *.dlq topic (or one) from the beginning without a consumer group, so it commits
nothing. replay publishes each chosen dead letter to its original topic and partition with its original
key, value and headers (the dlq_* headers removed) and a kariz_replayed_from header naming the dead
letter. Replaying is safe: every consumer group records the ce_id of each event it handled and drops an
id it already has, so an event that some group did handle changes nothing there. A record dead-lettered
by several groups is replayed once: every group reads the topic.

Reasons: not_json, invalid_schema, unknown_version, invalid_envelope, rejected, handler_failed.
The broker comes from KARIZ_KAFKA_BOOTSTRAP_SERVERS (or --bootstrap-servers), the producer's idempotence
from KARIZ_KAFKA_ENABLE_IDEMPOTENCE (the embedded dev broker needs false), and the sign-in from the same
KARIZ_KAFKA_TLS* and KARIZ_KAFKA_SASL_* settings the services use (README, Production security settings).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from kariz_ops.deadletters import at_offsets, read_dead_letters, replay, select
from kariz_shared.contracts.deadletters import (
    DeadLetter,
    DeadLetterError,
    DeadLetterReason,
    dead_letter_topic_of,
)
from kariz_shared.messaging.broker import kafka_client_options
from kariz_shared.runtime.settings import ServiceSettings

COLUMNS = (
    "dead letter",
    "original",
    "group",
    "reason",
    "attempts",
    "failed at",
    "event id",
    "type",
    "error",
)
ERROR_WIDTH = 100


def row(letter: DeadLetter) -> list[str]:
    d = letter.to_dict()
    error = " ".join((d["error"] or "").split())
    if len(error) > ERROR_WIDTH:
        error = error[: ERROR_WIDTH - 1] + "…"
    return [
        letter.ref,
        f"{d['original_topic']}:{_dash(d['original_partition'])}:{_dash(d['original_offset'])}",
        _dash(d["consumer_group"]),
        _dash(d["reason"]),
        _dash(d["attempts"]),
        _dash(d["failed_at"]),
        _dash(d["event_id"]),
        _dash(d["type"]),
        error or "-",
    ]


def _dash(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def print_table(letters: Sequence[DeadLetter]) -> None:
    rows = [[c.upper() for c in COLUMNS], *(row(d) for d in letters)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    for r in rows:
        print("  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)), r[-1]]).rstrip())


async def list_command(args: argparse.Namespace, bootstrap: str, settings: ServiceSettings) -> int:
    topics = [args.topic] if args.topic else None
    found = await read_dead_letters(bootstrap, topics, client_options=kafka_client_options(settings))
    letters = select(found, reason=args.reason, group=args.group)
    if args.json:
        for letter in letters:
            print(json.dumps(letter.to_dict()))
    else:
        print_table(letters)
    print(f"{len(letters)} dead letter(s)", file=sys.stderr)
    return 0


async def replay_command(args: argparse.Namespace, bootstrap: str, settings: ServiceSettings) -> int:
    topic = dead_letter_topic_of(args.topic)
    options = kafka_client_options(settings)
    letters = select(await read_dead_letters(bootstrap, [topic], client_options=options), group=args.group)
    if args.offset:
        chosen = at_offsets(letters, args.offset)
    else:
        chosen = select(letters, reason=args.reason)
    if not chosen:
        print(f"no dead letters in {topic} match", file=sys.stderr)
        return 1
    replays = await replay(
        bootstrap,
        chosen,
        enable_idempotence=settings.kafka_enable_idempotence,
        dry_run=args.dry_run,
        client_options=options,
    )
    for result in replays:
        print(result.describe())
    return 0


def parser() -> argparse.ArgumentParser:
    reasons = [r.value for r in DeadLetterReason]
    top = argparse.ArgumentParser(
        prog="kariz-dlq", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--bootstrap-servers", help="Kafka bootstrap servers (default: KARIZ_KAFKA_BOOTSTRAP_SERVERS)"
    )
    common.add_argument("--group", help="only what this consumer group dead-lettered")
    commands = top.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", parents=[common], help="print the dead letters, one line each")
    listing.add_argument("--topic", help="one topic, by its name or its .dlq name (default: every *.dlq)")
    listing.add_argument("--reason", choices=reasons)
    listing.add_argument("--json", action="store_true", help="one JSON object per line, error in full")

    replaying = commands.add_parser(
        "replay",
        parents=[common],
        help="publish chosen dead letters to their original topic (safe: consumers drop ids they handled)",
    )
    replaying.add_argument("--topic", required=True, help="the dead-letter topic (or its original topic)")
    which = replaying.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--offset",
        nargs="+",
        metavar="[PARTITION:]OFFSET",
        help="the dead letters at these positions of the .dlq topic, as `list` shows them",
    )
    which.add_argument("--all", action="store_true", help="every dead letter of the topic")
    which.add_argument("--reason", choices=reasons, help="every dead letter with this reason")
    replaying.add_argument(
        "--dry-run", action="store_true", help="say what would be replayed, publish nothing"
    )
    return top


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = ServiceSettings()
    bootstrap = args.bootstrap_servers or settings.kafka_bootstrap_servers
    try:
        if args.command == "list":
            code = asyncio.run(list_command(args, bootstrap, settings))
        else:
            code = asyncio.run(replay_command(args, bootstrap, settings))
    except DeadLetterError as exc:
        print(f"kariz-dlq: {exc}", file=sys.stderr)
        code = 2
    except KafkaError as exc:
        print(f"kariz-dlq: the broker at {bootstrap} did not answer: {exc}", file=sys.stderr)
        code = 3
    sys.exit(code)


if __name__ == "__main__":
    main()
