"""The use cases: record the deliveries an event causes (inside the consumer's transaction), and send a
claimed batch of deliveries and record what became of each (the worker's rounds call this)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from kariz_notifications.domain import digests, rendering, rules
from kariz_notifications.domain.automation import AutomationRule
from kariz_notifications.domain.content import ConsentRecord, Contact
from kariz_notifications.domain.model import (
    SUBSCRIPTION,
    Attempt,
    Channel,
    Delivery,
    DeliveryRecord,
    DeliveryStatus,
    EventContext,
    SendResult,
    WebhookPost,
)
from kariz_notifications.domain.schedule import NextStep, RetryPolicy
from kariz_notifications.domain.subscriptions import (
    ManagedSubscription,
    SubscriptionState,
    debounce_key,
    debounced,
)
from kariz_notifications.service_layer.commands import Deliver
from kariz_notifications.service_layer.unit_of_work import DeliveryQueue, NotificationsUnitOfWork
from kariz_shared.contracts.errors import RejectedEvent
from kariz_shared.contracts.events import (
    EVENTS,
    DigestDue,
    DigestItem,
    Event,
    LeadCaptured,
    LeadReassigned,
    LeadsMerged,
    NotificationDue,
    SubscriptionDebounceDue,
    lead_id_of,
)

log = logging.getLogger(__name__)


class Sender(Protocol):
    """One channel's way out: an SMTP server, webhook subscribers."""

    async def send(self, delivery: Delivery) -> SendResult: ...

    async def aclose(self) -> None: ...


class DeliveryMetrics(Protocol):
    """What the sending counts, by channel, and the outcomes also by the rule that caused the delivery."""

    def resumed(self, channel: Channel) -> None: ...

    def took(self, channel: Channel, seconds: float) -> None: ...

    def sent(self, channel: Channel, rule: str) -> None: ...

    def failed(self, channel: Channel, rule: str, *, gave_up: bool) -> None: ...

    def customer_sent(self, rule: str) -> None:
        """An e-mail to a customer's contact (content, a satisfaction check) was sent."""
        ...


@dataclass(frozen=True)
class Outcome:
    """One delivery of a batch after its attempt; ``recorded`` is False when its sender had lost it."""

    delivery: Delivery
    attempt: Attempt
    step: NextStep
    recorded: bool


async def follow_contact(uow: NotificationsUnitOfWork, event: Event) -> None:
    """Keep each lead's contact as the leads service's events tell it: captured (with its consent),
    reassigned (whose it is), merged (the duplicate's contact joins the survivor's)."""
    if isinstance(event, LeadCaptured):
        if await uow.contacts.get(event.lead_id) is not None:
            return  # a redelivered capture: what users recorded since stands
        c = event.contact
        consent = ConsentRecord(True, event.actor or f"capture:{event.source.value}", event.captured_at)
        await uow.contacts.save(
            Contact(
                lead_id=event.lead_id,
                email=c.email,
                name=f"{c.first_name} {c.last_name}".strip(),
                owner=event.owner,
                # Consent not given at capture is none recorded: content waits until a user records it.
                consent=consent if event.consent else None,
                history=[consent] if event.consent else [],
            )
        )
    elif isinstance(event, LeadReassigned):
        found = await uow.contacts.get(event.lead_id)
        if found is not None and found.owner != event.to_owner:
            found.owner = event.to_owner
            await uow.contacts.save(found)
    elif isinstance(event, LeadsMerged):
        duplicate = await uow.contacts.get(event.merged_lead_id)
        survivor = await uow.contacts.get(event.lead_id)
        if duplicate is None or duplicate.merged_into == event.lead_id:
            return  # unknown here, or a redelivered merge
        duplicate.merged_into = event.lead_id
        await uow.contacts.save(duplicate)
        if survivor is not None:
            survivor.absorb(duplicate)
            survivor.owner = event.owner
            await uow.contacts.save(survivor)


async def customer_reach(
    uow: NotificationsUnitOfWork, event: Event, rule_set: tuple[AutomationRule, ...]
) -> rules.CustomerReach | None:
    """What content actions of ``rule_set`` need for ``event`` (None: it has none, nothing is read)."""
    if not rules.needs_customers(event.event_name(), rule_set):
        return None
    lead_id = lead_id_of(event)
    found = await uow.contacts.current(lead_id) if lead_id is not None else None
    return rules.CustomerReach(found, tuple(await uow.content.active()), uow.links)


async def record_notifications(uow: NotificationsUnitOfWork, event: Event) -> list[Delivery]:
    """Write the deliveries (and the hand-over) an event causes. Nothing is sent here: sending is a side
    effect that must not happen inside a transaction that may be retried or rolled back."""
    if uow.causation_id is None or uow.correlation_id is None:
        raise ValueError("recording notifications needs the event's id and correlation id")
    context = EventContext(event_id=uow.causation_id, correlation_id=uow.correlation_id)
    at = uow.clock.now()
    await follow_contact(uow, event)
    # The process's copies (refreshed now and then), not two reads of the database for every event.
    in_force = await uow.rules.in_force()
    # The settings' subscribers, then those integrators registered (``/subscriptions``).
    # A subscription's value filters are the rules' conditions, on the same fields.
    fields = event.model_dump()
    accepting = [s for s in await uow.subscriptions.in_force() if s.accepts(event.event_name(), fields)]
    managed = tuple(s.as_subscriber() for s in accepting if s.debounce_seconds is None)
    audience = dataclasses.replace(uow.audience, subscribers=uow.audience.subscribers + managed)
    for subscription in accepting:
        if subscription.debounce_seconds is not None:
            await debounce(uow, subscription, event, context, at)
    reach = await customer_reach(uow, event, in_force.rules)
    plan = rules.plan(event, context, audience, uow.reps, in_force.rules, at=at, reach=reach)
    for note in plan.notes:
        log.warning(note, extra={"event_id": context.event_id, "event_type": event.event_name()})
    for delivery in plan.deliveries:
        uow.deliveries.add(delivery, at)
    for task in plan.tasks:
        # Through the outbox with this unit: a task is asked for exactly when its deliveries are recorded.
        uow.emit(task)
    for due in plan.deferrals:
        # A durable timer, armed in this transaction: a crash before it fires loses nothing.
        uow.timers.arm(due.deferral_id, due.due_at, due)
    for rule_id, action, length, locale, email in plan.digests:
        # The window's alerts live in its timer's event: added to in this transaction, sent at its end.
        key = digests.digest_key(rule_id, action, email.to)
        armed = await uow.timers.get(key)
        window = digests.gathered(
            armed.event if armed is not None and isinstance(armed.event, DigestDue) else None,
            rule_id=rule_id,
            action=action,
            email=email,
            locale=locale,
            item=DigestItem(
                event_id=context.event_id,
                event_type=event.event_name(),
                subject_id=event.key(),
                subject=email.subject,
                text=email.body,
            ),
            at=at,
            length=length,
        )
        uow.timers.arm(key, window.due_at, window)
    if plan.handover is not None:
        await uow.handovers.open(plan.handover, context.correlation_id, at)
    return plan.deliveries


async def debounce(
    uow: NotificationsUnitOfWork,
    subscription: ManagedSubscription,
    event: Event,
    context: EventContext,
    at: datetime,
) -> None:
    """The event as the latest of its subject's debounce window for ``subscription``: a durable timer,
    armed (or its event replaced) in this transaction, delivers the window's latest when it ends."""
    key = debounce_key(subscription.id, event.key())
    armed = await uow.timers.get(key)
    window = debounced(
        armed.event if armed is not None and isinstance(armed.event, SubscriptionDebounceDue) else None,
        subscription,
        event_id=context.event_id,
        event_type=event.event_name(),
        subject=event.key(),
        body=rendering.webhook_body(event, context),
        at=at,
    )
    uow.timers.arm(key, window.due_at, window)


async def deliver_debounced(uow: NotificationsUnitOfWork, window: SubscriptionDebounceDue) -> list[Delivery]:
    """A debounce window ended: its latest event to the subscription, as the delivery it would have had
    (the same key and event id, so a redelivered window adds nothing); none when the subscription is
    gone or no longer active."""
    if uow.correlation_id is None:
        raise ValueError("a debounced delivery needs its event's correlation id")
    subscription = await uow.subscriptions.get(window.subscription_id)
    if subscription is None or subscription.state is not SubscriptionState.ACTIVE:
        log.warning(
            "a debounce window ended for a subscription removed or not active: nothing sent",
            extra={"subscription": window.subscription_id, "event_id": window.event_id},
        )
        return []
    delivery = Delivery(
        key=rules.delivery_key(window.event_id, Channel.WEBHOOK, subscription.name),
        channel=Channel.WEBHOOK,
        recipient=subscription.name,
        event_type=window.event_type,
        event_id=window.event_id,
        subject=window.subject,
        correlation_id=uow.correlation_id,
        message=WebhookPost(url=subscription.url, subscriber=subscription.name, body=window.body),
        rule=SUBSCRIPTION,
    )
    uow.deliveries.add(delivery, uow.clock.now())
    return [delivery]


async def record_due_action(uow: NotificationsUnitOfWork, due: NotificationDue) -> list[Delivery]:
    """A deferred action come due: run it for its trigger event, by the rule as it reads now (a rule
    removed, disabled or narrowed meanwhile sends nothing, logged)."""
    if uow.correlation_id is None:
        raise ValueError("a deferred action needs its event's correlation id")
    extra = {"rule": due.rule_id, "deferral": due.deferral_id}
    trigger_cls = EVENTS.get(due.trigger)
    if trigger_cls is None:
        raise RejectedEvent(f"NotificationDue for an unknown event type {due.trigger!r}")
    event = trigger_cls.model_validate(due.event)
    in_force = await uow.rules.current()
    rule = next((r for r in in_force.rules if r.id == due.rule_id), None)
    if rule is None or not rule.enabled or due.action >= len(rule.actions):
        log.warning("a deferred action's rule is gone, disabled or shorter now: nothing sent", extra=extra)
        return []
    at = uow.clock.now()
    context = EventContext(event_id=due.deferral_id, correlation_id=uow.correlation_id)
    plan = rules.plan(
        event,
        context,
        uow.audience,
        uow.reps,
        (rule,),
        at=at,
        subscriptions=False,
        firing=rules.Firing(due.action, due.recipient),
        reach=await customer_reach(uow, event, (rule,)),
    )
    for note in plan.notes:
        log.warning(note, extra=extra)
    for delivery in plan.deliveries:
        uow.deliveries.add(delivery, at)
    for task in plan.tasks:
        uow.emit(task)
    return plan.deliveries


async def send_digest(uow: NotificationsUnitOfWork, window: DigestDue) -> list[Delivery]:
    """A digest window ended: its alerts as one e-mail (one delivery per window, so a redelivered
    ``DigestDue`` adds nothing)."""
    if uow.correlation_id is None:
        raise ValueError("a digest needs its event's correlation id")
    email = digests.digest_email(window)
    delivery = Delivery(
        key=rules.delivery_key(window.digest_id, Channel.EMAIL, window.recipient),
        channel=Channel.EMAIL,
        recipient=window.recipient,
        event_type=DigestDue.event_name(),
        event_id=window.digest_id,
        subject=window.items[0].subject_id if window.items else window.recipient,
        correlation_id=uow.correlation_id,
        message=email,
        rule=window.rule_id,
    )
    uow.deliveries.add(delivery, uow.clock.now())
    return [delivery]


async def deliver(
    command: Deliver,
    *,
    queue: DeliveryQueue,
    senders: Mapping[Channel, Sender],
    policy: RetryPolicy,
    metrics: DeliveryMetrics,
) -> list[Outcome]:
    """Send the claimed deliveries side by side, then record every attempt with one write (the
    database's cost is per command): sent, retried after its backoff, or given up."""
    tried = await asyncio.gather(
        *(send_one(record, command.at, senders, policy, metrics) for record in command.claimed)
    )
    recorded = await queue.record(
        [
            (record.delivery.key, attempt, step)
            for record, (attempt, step) in zip(command.claimed, tried, strict=True)
        ],
        command.token,
    )
    outcomes: list[Outcome] = []
    for record, (attempt, step) in zip(command.claimed, tried, strict=True):
        delivery = record.delivery
        outcome = Outcome(delivery, attempt, step, recorded=delivery.key in recorded)
        outcomes.append(outcome)
        if not outcome.recorded:
            log.warning(
                "lost the lease on a delivery; its new sender records it", extra={"delivery": delivery.key}
            )
        elif attempt.succeeded:
            metrics.sent(delivery.channel, delivery.rule)
            if delivery.to_customer:
                metrics.customer_sent(delivery.rule)
        else:
            metrics.failed(delivery.channel, delivery.rule, gave_up=step.status is DeliveryStatus.FAILED)
            log.warning(
                "delivery attempt failed",
                extra={"delivery": delivery.key, "status": step.status.value, "error": attempt.error},
            )
    return outcomes


async def send_one(
    record: DeliveryRecord,
    at: datetime,
    senders: Mapping[Channel, Sender],
    policy: RetryPolicy,
    metrics: DeliveryMetrics,
) -> tuple[Attempt, NextStep]:
    """Send one claimed delivery over its channel: the attempt, and where the delivery goes after it."""
    delivery = record.delivery
    if record.resumed_after_crash:
        # At least once: the dead sender may have delivered it; the same delivery id lets the
        # recipient (and the crash test) drop the repeat.
        metrics.resumed(delivery.channel)
        log.warning("resending a delivery whose sender died mid-send", extra={"delivery": delivery.key})
    started = time.perf_counter()  # how long the send took, not a business time
    try:
        result = await senders[delivery.channel].send(delivery)
    except Exception as exc:
        # A sender bug must still count as an attempt, or the delivery would be retried for ever.
        log.exception("sender failed unexpectedly", extra={"delivery": delivery.key})
        result = SendResult(ok=False, error=f"{type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - started
    metrics.took(delivery.channel, elapsed)
    attempt = Attempt.of(result, at=at, seconds=elapsed)
    return attempt, policy.next_step(attempt, len(record.attempts) + 1)
