"""Dead letters: what a consumer could not handle, why, and how to put it back once the cause is fixed.

A consumer that gives up on a record publishes it to ``<topic>.dlq`` with the original key, value and
headers, plus ``dlq_*`` headers saying where it came from and why (see :func:`dead_letter_headers`).
``dlq_reason`` is one word of :class:`DeadLetterReason`, for dashboards and for choosing what to replay.

Reading and replaying them is an operator's tool: :mod:`kariz_ops.deadletters` and ``kariz-dlq``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from aiokafka.structs import ConsumerRecord

from kariz_shared.contracts.events import dead_letter_topic

DLQ_SUFFIX = ".dlq"
DLQ_HEADER_PREFIX = "dlq_"
ORIGINAL_TOPIC = "dlq_original_topic"
ORIGINAL_PARTITION = "dlq_original_partition"
ORIGINAL_OFFSET = "dlq_original_offset"
CONSUMER_GROUP = "dlq_consumer_group"
REASON = "dlq_reason"
ERROR = "dlq_error"
ATTEMPTS = "dlq_attempts"
FAILED_AT = "dlq_failed_at"
#: Headers the publishing client added that the original record did not have (comma-separated);
#: a replay leaves them out again.
ADDED_HEADERS = "dlq_added_headers"
#: Set on a replayed record: ``<dlq topic>:<partition>:<offset>`` of the dead letter it came from.
REPLAYED_FROM = "kariz_replayed_from"

ERROR_LIMIT = 2000


class DeadLetterReason(StrEnum):
    """Why a record went to the dead letters. Also the ``reason`` label of ``kariz_dead_letters_total``."""

    NOT_JSON = "not_json"
    """The value is not JSON (or not UTF-8)."""
    INVALID_SCHEMA = "invalid_schema"
    """JSON, but not the event model of the topic's version."""
    UNKNOWN_VERSION = "unknown_version"
    """``ce_type`` names another version of the topic's event, or ``ce_specversion`` is not 1.0."""
    INVALID_ENVELOPE = "invalid_envelope"
    """Missing or malformed CloudEvents headers, another event's ``ce_type``, or a key that is not the
    aggregate id."""
    REJECTED = "rejected"
    """The handler raised ``RejectedEvent``: the event can never be applied as it is."""
    HANDLER_FAILED = "handler_failed"
    """The handler failed ``KARIZ_CONSUMER_MAX_ATTEMPTS`` times with an error that is not an outage."""


def dead_letter_headers(
    headers: dict[str, str],
    *,
    topic: str,
    partition: int,
    offset: int,
    consumer_group: str,
    reason: DeadLetterReason,
    error: str,
    attempts: int,
    failed_at: datetime | None = None,
    client_headers: Iterable[str] = (),
) -> dict[str, str]:
    """The original headers plus the ``dlq_*`` ones. Earlier ``dlq_*`` headers (a replay that failed again)
    are replaced, so each dead letter describes its own failure. ``client_headers`` are the headers the
    publishing client sets on every record: those the original lacked are named in ``dlq_added_headers``."""
    added = sorted(h for h in client_headers if h not in headers)
    return {
        **{k: v for k, v in headers.items() if not k.startswith(DLQ_HEADER_PREFIX)},
        ORIGINAL_TOPIC: topic,
        ORIGINAL_PARTITION: str(partition),
        ORIGINAL_OFFSET: str(offset),
        CONSUMER_GROUP: consumer_group,
        REASON: reason.value,
        ERROR: error[:ERROR_LIMIT],
        ATTEMPTS: str(attempts),
        FAILED_AT: (failed_at or datetime.now(UTC)).isoformat(),
        **({ADDED_HEADERS: ",".join(added)} if added else {}),
    }


class DeadLetterError(Exception):
    """A dead-letter command that cannot be carried out (unknown topic, offset that does not exist)."""


@dataclass(frozen=True)
class DeadLetter:
    """One record of a ``*.dlq`` topic, headers kept as the broker gave them."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    raw_headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value or b"",
            raw_headers=tuple((k, bytes(v)) for k, v in (record.headers or ())),
        )

    @property
    def ref(self) -> str:
        """``<dlq topic>:<partition>:<offset>``: names this dead letter for ``replay`` and in a replay."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        for k, v in self.raw_headers:
            if k == name:
                return v.decode(errors="backslashreplace")
        return None

    @property
    def original_topic(self) -> str:
        return self.header(ORIGINAL_TOPIC) or self.topic.removesuffix(DLQ_SUFFIX)

    @property
    def original_partition(self) -> int | None:
        value = self.header(ORIGINAL_PARTITION)
        return int(value) if value and value.isdigit() else None

    @property
    def original_offset(self) -> int | None:
        value = self.header(ORIGINAL_OFFSET)
        return int(value) if value and value.isdigit() else None

    @property
    def consumer_group(self) -> str | None:
        return self.header(CONSUMER_GROUP)

    @property
    def reason(self) -> str | None:
        return self.header(REASON)

    @property
    def attempts(self) -> int | None:
        value = self.header(ATTEMPTS)
        return int(value) if value and value.isdigit() else None

    @property
    def original_position(self) -> tuple[str, int | None, int | None]:
        return (self.original_topic, self.original_partition, self.original_offset)

    def to_dict(self) -> dict[str, Any]:
        """What ``kariz-dlq list --json`` prints: the dead letter's own position, the original's, and why."""
        return {
            "ref": self.ref,
            "dlq_topic": self.topic,
            "dlq_partition": self.partition,
            "dlq_offset": self.offset,
            "original_topic": self.original_topic,
            "original_partition": self.original_partition,
            "original_offset": self.original_offset,
            "consumer_group": self.consumer_group,
            "reason": self.reason,
            "attempts": self.attempts,
            "failed_at": self.header(FAILED_AT),
            "event_id": self.header("ce_id"),
            "type": self.header("ce_type"),
            "key": self.key.decode(errors="backslashreplace") if self.key is not None else None,
            "error": self.header(ERROR),
            "replayed_from": self.header(REPLAYED_FROM),
        }

    def replay_headers(self) -> list[tuple[str, bytes]]:
        """The original headers (byte for byte, without ``dlq_*``) and where this replay came from."""
        added = set(filter(None, (self.header(ADDED_HEADERS) or "").split(",")))
        kept = [
            (k, v)
            for k, v in self.raw_headers
            if not k.startswith(DLQ_HEADER_PREFIX) and k != REPLAYED_FROM and k not in added
        ]
        return [*kept, (REPLAYED_FROM, self.ref.encode())]


def dead_letter_topic_of(topic: str) -> str:
    """``kariz.lead-captured.v1`` or ``kariz.lead-captured.v1.dlq`` -> ``kariz.lead-captured.v1.dlq``."""
    return topic if topic.endswith(DLQ_SUFFIX) else dead_letter_topic(topic)
