"""The envelope: CloudEvents 1.0 in Kafka binary mode.

The Kafka value is the event's JSON; the CloudEvents attributes travel as headers (``ce_id``,
``ce_source``, ``ce_type``, ``ce_specversion``, ``ce_time``, ``ce_subject``, ``content-type``) plus
extension attributes: ``ce_correlationid`` (follows one lead through the whole cycle),
``ce_causationid`` (the id of the event that caused this one, when there is one), ``ce_actor`` (who
made the change: a person's subject, ``key:<id>`` for a machine, or the service's own source for what it
did by itself) and, for a machine, ``ce_onbehalfof`` (whom its key acts for).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from kariz_shared.contracts.deadletters import DeadLetterReason
from kariz_shared.contracts.events import EVENTS_BY_TOPIC, Event

E = TypeVar("E", bound=Event)

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
REQUIRED_HEADERS = ("ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time")
CE_TYPE = re.compile(r"^kariz\.(?P<event>[a-z0-9-]+)\.v(?P<version>\d+)$")


class InvalidEnvelope(ValueError):
    """A message that cannot be read as a Kariz event. The message says what is wrong, ``reason`` which
    kind of wrong it is (the ``dlq_reason`` of its dead letter)."""

    def __init__(self, message: str, reason: DeadLetterReason = DeadLetterReason.INVALID_ENVELOPE) -> None:
        super().__init__(message)
        self.reason = reason


def new_event_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Envelope(Generic[E]):
    event: E
    source: str
    correlation_id: str
    id: str = field(default_factory=new_event_id)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    causation_id: str | None = None
    #: Who made the change the event tells of: a signed-in person's subject, or the service itself
    #: (its ``ce_source``) for what it did on its own (a consumed event, a timer).
    actor: str | None = None
    #: For a machine's change (an API key's actor), whom the key acts for.
    on_behalf_of: str | None = None

    @property
    def topic(self) -> str:
        return self.event.topic()

    @property
    def key(self) -> str:
        return self.event.key()

    def headers(self) -> dict[str, str]:
        headers = {
            "ce_id": self.id,
            "ce_source": self.source,
            "ce_type": self.event.ce_type(),
            "ce_specversion": SPECVERSION,
            "ce_time": self.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "ce_subject": self.key,
            "ce_correlationid": self.correlation_id,
            "content-type": CONTENT_TYPE,
        }
        if self.causation_id:
            headers["ce_causationid"] = self.causation_id
        if self.actor:
            headers["ce_actor"] = self.actor
        if self.on_behalf_of:
            headers["ce_onbehalfof"] = self.on_behalf_of
        return headers

    def value(self) -> bytes:
        return self.event.model_dump_json().encode()

    def to_document(self) -> dict[str, Any]:
        """The envelope as stored in an outbox: everything needed to publish it later, byte for byte."""
        return {
            "_id": self.id,
            "topic": self.topic,
            "key": self.key,
            "headers": self.headers(),
            "value": self.value(),
        }


def decode(topic: str, key: bytes | None, value: bytes, headers: dict[str, Any]) -> Envelope[Event]:
    """Read a Kafka record as a Kariz event, or raise InvalidEnvelope saying what is wrong and why.

    Fields the model does not know are ignored, so producers may add optional fields before consumers
    know them.
    """
    event_cls = EVENTS_BY_TOPIC.get(topic)
    if event_cls is None:
        raise InvalidEnvelope(f"topic {topic!r} carries no known Kariz event")
    try:
        hdrs = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in headers.items()}
    except UnicodeDecodeError as exc:
        raise InvalidEnvelope(f"a header is not UTF-8: {exc}") from exc
    missing = [h for h in REQUIRED_HEADERS if not hdrs.get(h)]
    if missing:
        raise InvalidEnvelope(f"missing CloudEvents headers: {', '.join(missing)}")
    if hdrs["ce_specversion"] != SPECVERSION:
        raise InvalidEnvelope(
            f"unsupported ce_specversion {hdrs['ce_specversion']!r} (this consumer reads {SPECVERSION})",
            DeadLetterReason.UNKNOWN_VERSION,
        )
    if hdrs["ce_type"] != event_cls.ce_type():
        named = CE_TYPE.match(hdrs["ce_type"])
        other_version = named is not None and named["event"] == event_cls.kebab_name()
        raise InvalidEnvelope(
            f"ce_type {hdrs['ce_type']!r} does not match topic {topic!r} (expected {event_cls.ce_type()!r})"
            + ("; another version of the event belongs on its own topic" if other_version else ""),
            DeadLetterReason.UNKNOWN_VERSION if other_version else DeadLetterReason.INVALID_ENVELOPE,
        )
    try:
        payload = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEnvelope(f"value is not JSON: {exc}", DeadLetterReason.NOT_JSON) from exc
    try:
        event = event_cls.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidEnvelope(
            f"value does not match {event_cls.__name__} v{event_cls.version}: {problems}",
            DeadLetterReason.INVALID_SCHEMA,
        ) from exc
    if key is not None and key.decode(errors="replace") != event.key():
        raise InvalidEnvelope(f"key {key!r} is not the aggregate id {event.key()!r}")
    try:
        time = datetime.fromisoformat(hdrs["ce_time"].replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidEnvelope(f"ce_time {hdrs['ce_time']!r} is not an RFC 3339 timestamp") from exc
    return Envelope(
        event=event,
        source=hdrs["ce_source"],
        correlation_id=hdrs.get("ce_correlationid") or hdrs["ce_id"],
        id=hdrs["ce_id"],
        time=time,
        causation_id=hdrs.get("ce_causationid"),
        actor=hdrs.get("ce_actor"),
        on_behalf_of=hdrs.get("ce_onbehalfof"),
    )
