"""The live roster (KARIZ_TEAMS as the seed, the reps' newest profiles over it) and the state reader's
folding of kariz.reps.v1's records into it, in memory: no broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import ConsumerRecord

from kariz_shared.contracts.deadletters import DeadLetterReason
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import LeadCaptured, RepProfile
from kariz_shared.contracts.identity import Caller, LiveRoster, Role, Roster
from kariz_shared.messaging.state import StateReader, Unreadable
from kariz_shared.runtime.settings import ServiceSettings

AT = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
SEED = Roster.of({"emea": ["Alex@Kariz.Example", "sam@kariz.example"], "dach": ["jonas@kariz.example"]})


def rep(email: str, team: str | None, **fields: Any) -> RepProfile:
    return RepProfile(email=email, team=team, updated_at=AT, **fields)


def test_the_seed_answers_alone_until_the_topic_names_someone() -> None:
    roster = LiveRoster(SEED)
    assert roster.members("emea") == {"alex@kariz.example", "sam@kariz.example"}
    assert roster.members(None) == frozenset()
    assert roster.members("nowhere") == frozenset()
    assert roster.team_of("ALEX@kariz.example") == "emea"
    assert roster.profile("alex@kariz.example") is None
    assert roster.manager_of("alex@kariz.example") is None


def test_an_active_profile_joins_its_team_beside_the_seed() -> None:
    roster = LiveRoster(SEED)
    roster.put(rep("Ria@Kariz.Example", "emea", manager="Kim@Kariz.Example", time_zone="Europe/Berlin"))
    assert roster.members("emea") == {"alex@kariz.example", "sam@kariz.example", "ria@kariz.example"}
    assert roster.team_of("ria@kariz.example") == "emea"
    assert roster.manager_of("ria@kariz.example") == "kim@kariz.example"
    profile = roster.profile("RIA@kariz.example")
    assert profile is not None and profile.time_zone == "Europe/Berlin"


def test_a_profile_outranks_the_seed_for_its_address() -> None:
    roster = LiveRoster(SEED)
    roster.put(rep("sam@kariz.example", "dach"))  # moved: the old configuration still lists sam in emea
    assert roster.members("emea") == {"alex@kariz.example"}
    assert roster.members("dach") == {"jonas@kariz.example", "sam@kariz.example"}
    roster.put(rep("alex@kariz.example", "emea", active=False))  # left
    assert roster.members("emea") == frozenset()
    assert roster.team_of("alex@kariz.example") == "emea"  # their records stay the team's in reports


def test_the_newest_profile_wins_and_a_deletion_gives_the_address_back_to_the_seed() -> None:
    roster = LiveRoster(SEED)
    roster.put(rep("sam@kariz.example", "dach"))
    roster.put(rep("sam@kariz.example", "apac"))
    assert roster.members("dach") == {"jonas@kariz.example"}
    assert roster.members("apac") == {"sam@kariz.example"}
    roster.apply("sam@kariz.example", None)
    assert roster.members("apac") == frozenset()
    assert "sam@kariz.example" in roster.members("emea")
    assert len(roster) == 0


def test_a_managers_visibility_follows_the_live_roster() -> None:
    roster = LiveRoster(SEED)
    kim = frozenset({Role.MANAGER})
    # Their own and their team's queue (leads no rep of the team was available for).
    assert Caller.signed_in("kim@kariz.example", kim, "apac", roster).seen.these == {
        "kim@kariz.example",
        "queue:apac",
    }
    roster.put(rep("ria@kariz.example", "apac"))
    seen = Caller.signed_in("kim@kariz.example", kim, "apac", roster).seen
    assert seen.include("ria@kariz.example")
    # A rep sees only their own, whatever the roster says.
    assert Caller.signed_in("sam@kariz.example", frozenset({Role.REP}), "apac", roster).seen.these == {
        "sam@kariz.example"
    }


# --- the reader's folding ----------------------------------------------------------------------------


def record(
    value: bytes | None, key: bytes | None, headers: dict[str, str], offset: int = 0
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=RepProfile.topic(),
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=[(k, v.encode()) for k, v in headers.items()],
    )


def published(
    profile: RepProfile, source: str = "/kariz/leads", offset: int = 0
) -> ConsumerRecord[bytes, bytes]:
    env = Envelope(event=profile, source=source, correlation_id="c")
    return record(env.value(), env.key.encode(), env.headers(), offset)


def reader_into(
    roster: LiveRoster, **settings: Any
) -> tuple[StateReader[RepProfile], list[tuple[str, DeadLetterReason]]]:
    letters: list[tuple[str, DeadLetterReason]] = []

    async def dead_letter(
        _: ConsumerRecord[bytes, bytes], reader: str, reason: DeadLetterReason, __: str
    ) -> None:
        letters.append((reader, reason))

    settings = ServiceSettings(service_name="probe", kafka_group_prefix="kariz", **settings)
    return StateReader(RepProfile, settings, dead_letter=dead_letter, on_change=roster.apply), letters


async def test_records_fold_into_the_newest_per_key_and_bad_ones_are_dead_lettered() -> None:
    roster = LiveRoster(SEED)
    reader, letters = reader_into(roster)
    ria = "ria@kariz.example"
    await reader.take(published(rep(ria, "emea"), offset=0))
    await reader.take(record(b"{not json", ria.encode(), {}, 1))
    await reader.take(published(rep(ria, "dach"), source="/kariz/deals", offset=2))
    headers = Envelope(event=rep(ria, "dach"), source="/kariz/leads", correlation_id="c").headers()
    await reader.take(record(b'{"email": "ria@kariz.example"}', ria.encode(), headers, 3))
    await reader.take(published(rep(ria, "apac", manager="kim@kariz.example"), offset=4))
    assert reader.latest[ria].team == "apac"
    assert roster.members("apac") == {ria} and ria not in roster.members("emea")
    assert [reason for _, reason in letters] == [
        DeadLetterReason.INVALID_ENVELOPE,  # no CloudEvents headers
        DeadLetterReason.INVALID_ENVELOPE,  # another service's ce_source
        DeadLetterReason.INVALID_SCHEMA,  # no updated_at
    ]
    assert {reader_name for reader_name, _ in letters} == {"kariz-probe.rep-profile.state"}
    await reader.take(record(None, ria.encode(), {}, 5))  # a tombstone
    assert ria not in reader.latest and roster.profile(ria) is None


def test_a_record_of_another_event_is_unreadable() -> None:
    reader, _ = reader_into(LiveRoster())
    from .test_envelope import captured

    env = Envelope(event=captured(), source="/kariz/leads", correlation_id="c")
    wrong = record(env.value(), env.key.encode(), env.headers())
    outcome = reader.fold(wrong)
    assert isinstance(outcome, Unreadable) and outcome.reason is DeadLetterReason.INVALID_ENVELOPE
    assert LeadCaptured.ce_type() in outcome.error and reader.latest == {}


def test_caught_up_at_the_end_offsets_seen_at_start_and_readiness_bounded() -> None:
    waiting, _ = reader_into(LiveRoster())
    assert not waiting.ready()  # not reading yet
    waiting._started_at = time.monotonic()
    assert not waiting.ready()  # within state_catch_up_s (30 s)
    bounded, _ = reader_into(LiveRoster(), state_catch_up_s=0)
    bounded._started_at = time.monotonic()
    assert bounded.ready() and not bounded.caught_up.is_set()  # the bound passed: ready without it
    reader, _ = reader_into(LiveRoster())
    reader._targets = {0: 3, 1: 0}
    reader._note_position(0, 2)
    reader._note_position(1, 0)
    assert not reader.caught_up.is_set()
    reader._note_position(0, 3)
    assert reader.caught_up.is_set()


def test_only_a_state_topic_has_a_reader() -> None:
    async def ignore(*_: object) -> None: ...

    with pytest.raises(ValueError, match="not a state topic"):
        StateReader(LeadCaptured, ServiceSettings(), dead_letter=ignore)


# --- the following loop, on a broker of lists ----------------------------------------------------


class ListBroker:
    """A topic as lists of records per partition; ``fail`` makes the next fetch fail like a lost
    connection."""

    def __init__(self, logs: dict[int, list[ConsumerRecord[bytes, bytes]]]) -> None:
        self.logs = logs
        self.fail = False
        self.consumers: list[ListConsumer] = []


class ListConsumer:
    """What StateReader asks of an AIOKafkaConsumer, reading a ListBroker one record per fetch."""

    def __init__(self, broker: ListBroker) -> None:
        self.broker = broker
        self.positions: dict[int, int] = {}
        self.seeks: list[tuple[str, int]] = []
        broker.consumers.append(self)

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def topics(self) -> set[str]:
        return {RepProfile.topic()}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(self.broker.logs)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.broker.logs[tp.partition]) for tp in partitions}

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp.partition] = offset
        self.seeks.append(("to", offset))

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self.positions[tp.partition] = 0
            self.seeks.append(("beginning", tp.partition))

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp.partition]

    async def getmany(self, **_: int) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        await asyncio.sleep(0)  # the reader's loop yields as a real fetch would
        if self.broker.fail:
            self.broker.fail = False
            raise KafkaConnectionError("connection lost")
        batches = {}
        for partition, log in self.broker.logs.items():
            at = self.positions[partition]
            if at < len(log):
                batches[TopicPartition(RepProfile.topic(), partition)] = [log[at]]
                self.positions[partition] = at + 1
        return batches


async def test_a_reconnection_goes_on_from_where_the_reader_was_and_a_failed_dead_letter_is_retried() -> None:
    roster = LiveRoster()
    ria, sam = "ria@kariz.example", "sam@kariz.example"
    broker = ListBroker(
        {
            0: [
                published(rep(ria, "emea"), offset=0),
                record(b"{not json", ria.encode(), {}, 1),
                published(rep(ria, "apac"), offset=2),
            ],
            1: [published(rep(sam, "dach"), offset=0)],
        }
    )
    applied: list[str] = []
    letters: list[int] = []

    async def dead_letter(raw: ConsumerRecord[bytes, bytes], *_: object) -> None:
        if not letters and not applied.count("lost"):
            applied.append("lost")  # the first try finds the broker gone
            raise KafkaConnectionError("dead letter not sent")
        letters.append(raw.offset)

    def changed(key: str, profile: RepProfile | None) -> None:
        applied.append(key)
        roster.apply(key, profile)

    settings = ServiceSettings(service_name="probe", startup_retry_initial_s=0, startup_retry_max_s=0)
    reader = StateReader(RepProfile, settings, dead_letter=dead_letter, on_change=changed)
    reader._consumer = lambda: ListConsumer(broker)  # type: ignore[method-assign]
    following = asyncio.create_task(reader.run())
    try:
        await asyncio.wait_for(reader.caught_up.wait(), 5)
        assert roster.members("apac") == {ria} and roster.members("dach") == {sam}
        assert letters == [1]  # sent once, after the reconnection, not skipped
        first, second = broker.consumers[:2]
        assert first.seeks == [("beginning", 0), ("beginning", 1)]
        assert ("beginning", 0) not in second.seeks and ("to", 1) in second.seeks
        broker.logs[1].append(published(rep(sam, "emea"), offset=1))
        broker.fail = True
        await asyncio.wait_for(_until(lambda: roster.team_of(sam) == "emea"), 5)
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
    assert len(broker.consumers) == 3
    assert applied == [ria, sam, "lost", ria, sam]  # every record once, in each partition's order


async def _until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0)
