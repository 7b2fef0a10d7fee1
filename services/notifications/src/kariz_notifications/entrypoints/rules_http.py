"""The runtime rules over HTTP (``/rules``): admins add, replace and preview rules, admins and managers
read them. Every change is the next version of the rule set (its number in the ETag, ``If-Match`` on a
change: 409 when another admin changed the rules first), as leads' ``/assignment-rules``."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kariz_notifications.domain.automation import (
    Action,
    AutomationRule,
    ChatAction,
    Condition,
    ContentAction,
    CustomerMessage,
    EmailAction,
    Operator,
    QuietHours,
    RecipientRole,
    Recipients,
    RuleSetVersion,
    TaskAction,
    WebhookAction,
)
from kariz_notifications.domain.content import ContentChoice
from kariz_notifications.domain.model import Email, WebhookPost
from kariz_notifications.domain.templates import EmailTexts
from kariz_notifications.service_layer import rule_set
from kariz_notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import EVENTS, TaskKind
from kariz_shared.contracts.identity import Role
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated
from kariz_shared.runtime.http import (
    IF_MATCH,
    Limit,
    Offset,
    Page,
    VersionNumber,
    edited_version,
    version_etag,
)

FieldPath = Annotated[
    str,
    Field(
        pattern=r"^[a-z_][a-z0-9_]{0,63}(\.[a-z_][a-z0-9_]{0,63}){0,4}$",
        description="e.g. amount, company.industry",
    ),
]
Scalar = bool | int | float | Annotated[str, Field(max_length=200)]
RuleId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="The rule's id")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConditionBody(Strict):
    field: FieldPath
    op: Operator
    value: Scalar | Annotated[list[Scalar], Field(max_length=100)] | None = None

    def condition(self) -> Condition:
        return Condition(self.field, self.op, self.value)


class RecipientsBody(Strict):
    role: RecipientRole
    field: FieldPath | None = Field(
        default=None,
        description="The event's field naming the person or team (owner, assignee, to_owner, team)",
    )
    addresses: list[Annotated[str, Field(max_length=320)]] = Field(default=[], max_length=50)

    def recipients(self) -> Recipients:
        return Recipients(self.role, self.field, tuple(self.addresses))

    @classmethod
    def of(cls, r: Recipients) -> RecipientsBody:
        return cls(role=r.role, field=r.field, addresses=list(r.addresses))


class TemplateBody(Strict):
    subject: str = Field(min_length=1, max_length=1000)
    text: str = Field(max_length=20_000, description="The plain-text part (sandboxed Jinja2)")
    html: str | None = Field(default=None, max_length=20_000, description="The HTML part, if any")


Delay = Annotated[
    int, Field(ge=0, le=365 * 24 * 60, description="Minutes after the trigger it goes (a durable timer)")
]


class QuietHoursBody(Strict):
    start: time = Field(description="e.g. 22:00, in each recipient's time zone")
    end: time = Field(description="e.g. 07:00; before the start: over midnight")


class EmailActionBody(Strict):
    kind: Literal["email"] = "email"
    delay_minutes: Delay = 0
    quiet_hours: QuietHoursBody | None = Field(
        default=None, description="An e-mail due inside them goes at their end, in the recipient's zone"
    )
    digest_minutes: int = Field(
        default=0, ge=0, le=24 * 60, description="Its alerts to one person within this window: one e-mail"
    )
    recipients: list[RecipientsBody] = Field(min_length=1, max_length=20)
    templates: dict[Literal["en", "fa"], TemplateBody] = Field(
        default={}, description="By locale; English is the fallback for a reader of another locale"
    )
    builtin: str | None = Field(default=None, description="One of today's e-mails (a default rule's) instead")

    def action(self) -> EmailAction:
        return EmailAction(
            recipients=tuple(r.recipients() for r in self.recipients),
            templates={k: EmailTexts(t.subject, t.text, t.html) for k, t in self.templates.items()},
            builtin=self.builtin,
            delay=timedelta(minutes=self.delay_minutes),
            digest=timedelta(minutes=self.digest_minutes),
            quiet_hours=None
            if self.quiet_hours is None
            else QuietHours(
                self.quiet_hours.start.replace(tzinfo=None), self.quiet_hours.end.replace(tzinfo=None)
            ),
        )


class WebhookActionBody(Strict):
    kind: Literal["webhook"] = "webhook"
    delay_minutes: Delay = 0
    subscriber: str = Field(min_length=1, max_length=64, description="A webhook subscriber of the settings")


class TaskActionBody(Strict):
    kind: Literal["task"] = "task"
    delay_minutes: Delay = 0
    assignee: RecipientsBody
    title: str = Field(min_length=1, max_length=200, description="Sandboxed Jinja2, like the e-mails")
    task: TaskKind = TaskKind.OTHER
    due_in_minutes: int = Field(default=24 * 60, ge=0, le=365 * 24 * 60)


class ChatActionBody(Strict):
    kind: Literal["chat"] = "chat"
    delay_minutes: Delay = 0
    destination: str = Field(min_length=1, max_length=64, description="A chat webhook of the settings")
    title: str = Field(min_length=1, max_length=500, description="Sandboxed Jinja2, like the e-mails")
    text: str = Field(max_length=3000, description="Sandboxed Jinja2; Slack mrkdwn for a Slack channel")


Tag = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class ContentActionBody(Strict):
    """An e-mail to the event's customer contact (its lead's): only with consent recorded, always with
    an unsubscribe link. ``message`` content: the library piece ``content_id`` names, else the first
    active one (oldest first) with every tag of ``tags`` (and of the event's list ``tags_field``),
    suiting the event's stage (``stage_field``, e.g. to_stage) and one of ``segments``; satisfaction:
    the after-sale check, no piece."""

    kind: Literal["content"] = "content"
    delay_minutes: Delay = 0
    message: CustomerMessage = CustomerMessage.CONTENT
    content_id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    tags: list[Tag] = Field(default=[], max_length=20)
    stage_field: FieldPath | None = Field(default=None, description="e.g. to_stage, stage")
    segments: list[Tag] = Field(default=[], max_length=20)
    tags_field: FieldPath | None = Field(default=None, description="e.g. content_tags (NurtureStepDue)")

    def action(self) -> ContentAction:
        choice = ContentChoice(
            content_id=self.content_id,
            tags=tuple(self.tags),
            stage_field=self.stage_field,
            segments=tuple(self.segments),
            tags_field=self.tags_field,
        )
        return ContentAction(choice, self.message, delay=timedelta(minutes=self.delay_minutes))


AnyAction = EmailActionBody | WebhookActionBody | TaskActionBody | ChatActionBody | ContentActionBody
ActionBody = Annotated[AnyAction, Field(discriminator="kind")]


def _minutes(delay: timedelta) -> int:
    return int(delay.total_seconds() // 60)


def _action_body(a: Action) -> AnyAction:
    if isinstance(a, EmailAction):
        quiet = a.quiet_hours
        return EmailActionBody(
            delay_minutes=_minutes(a.delay),
            digest_minutes=_minutes(a.digest),
            quiet_hours=None if quiet is None else QuietHoursBody(start=quiet.start, end=quiet.end),
            recipients=[RecipientsBody.of(r) for r in a.recipients],
            templates={
                k: TemplateBody(subject=t.subject, text=t.text, html=t.html) for k, t in a.templates.items()
            },
            builtin=a.builtin,
        )
    if isinstance(a, WebhookAction):
        return WebhookActionBody(subscriber=a.subscriber, delay_minutes=_minutes(a.delay))
    if isinstance(a, ChatAction):
        return ChatActionBody(
            destination=a.destination, title=a.title, text=a.text, delay_minutes=_minutes(a.delay)
        )
    if isinstance(a, ContentAction):
        c = a.choice
        return ContentActionBody(
            delay_minutes=_minutes(a.delay),
            message=a.message,
            content_id=c.content_id,
            tags=list(c.tags),
            stage_field=c.stage_field,
            segments=list(c.segments),
            tags_field=c.tags_field,
        )
    return TaskActionBody(
        delay_minutes=_minutes(a.delay),
        assignee=RecipientsBody.of(a.assignee),
        title=a.title,
        task=a.task,
        due_in_minutes=int(a.due_in.total_seconds() // 60),
    )


class RuleChange(Strict):
    """A rule as PUT /rules/{id} takes it (its id in the path)."""

    trigger: str = Field(description="An event type, e.g. StageChanged, DealWon")
    description: str = Field(default="", max_length=500)
    enabled: bool = True
    conditions: list[ConditionBody] = Field(default=[], max_length=20, description="All must hold")
    actions: list[ActionBody] = Field(min_length=1, max_length=10)

    def rule(self, rule_id: str) -> AutomationRule:
        actions: list[Action] = []
        for a in self.actions:
            if isinstance(a, EmailActionBody):
                actions.append(a.action())
            elif isinstance(a, WebhookActionBody):
                actions.append(WebhookAction(a.subscriber, delay=timedelta(minutes=a.delay_minutes)))
            elif isinstance(a, ChatActionBody):
                actions.append(
                    ChatAction(a.destination, a.title, a.text, delay=timedelta(minutes=a.delay_minutes))
                )
            elif isinstance(a, ContentActionBody):
                actions.append(a.action())
            else:
                actions.append(
                    TaskAction(
                        a.assignee.recipients(),
                        a.title,
                        a.task,
                        timedelta(minutes=a.due_in_minutes),
                        delay=timedelta(minutes=a.delay_minutes),
                    )
                )
        return AutomationRule(
            id=rule_id,
            trigger=self.trigger,
            actions=tuple(actions),
            conditions=tuple(c.condition() for c in self.conditions),
            enabled=self.enabled,
            description=self.description,
        )


class NewRule(RuleChange):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")


class RuleView(NewRule):
    version: int = Field(description="The version of the rule set it is read from")

    @classmethod
    def of(cls, rule: AutomationRule, version: int) -> RuleView:
        return cls(
            id=rule.id,
            trigger=rule.trigger,
            description=rule.description,
            enabled=rule.enabled,
            conditions=[ConditionBody(field=c.field, op=c.op, value=c.value) for c in rule.conditions],
            actions=[_action_body(a) for a in rule.actions],
            version=version,
        )


class RuleSetView(BaseModel):
    version: int
    took_effect_at: datetime
    actor: str
    rules: list[RuleView]

    @classmethod
    def of(cls, v: RuleSetVersion) -> RuleSetView:
        return cls(
            version=v.number,
            took_effect_at=v.took_effect_at,
            actor=v.actor,
            rules=[RuleView.of(r, v.number) for r in v.rules],
        )


class RuleSetVersionRow(BaseModel):
    version: int
    took_effect_at: datetime
    actor: str
    rules: int

    @classmethod
    def of(cls, v: RuleSetVersion) -> RuleSetVersionRow:
        return cls(version=v.number, took_effect_at=v.took_effect_at, actor=v.actor, rules=len(v.rules))


class PreviewRequest(Strict):
    event: dict[str, Any] = Field(description="A sample event of the rule's trigger, as it is published")


class PreviewDelivery(BaseModel):
    channel: str
    recipient: str
    rule: str
    subject: str | None = None
    body: str
    html: str | None = None
    url: str | None = None
    skipped: str | None = Field(
        default=None, description="Why it would not be sent (content: no_consent, unsubscribed...)"
    )


class PreviewView(BaseModel):
    matched: bool = Field(description="Whether every condition holds for the sample event")
    deliveries: list[PreviewDelivery]
    tasks: list[dict[str, Any]] = Field(description="The TaskRequested events it would publish")
    notes: list[str]


ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not an admin"},
    404: {"description": "No such rule"},
    409: {"description": "If-Match names a version no longer in force, or the id is taken; nothing changed"},
    422: {"description": "A rule that cannot run, named by its part and field"},
}
IfMatch = Annotated[
    str | None,
    Header(
        pattern=IF_MATCH,
        description='The ETag of the version edited (from GET /rules, e.g. "3"): 409 if another is in '
        "force by now. Without it, whatever is in force is changed",
    ),
]


def _sample_event(trigger: str, body: dict[str, Any]) -> Any:
    try:
        return EVENTS[trigger].model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise RuleViolation(f"event.{where}: {first['msg']}") from exc


def router(units: UnitsOfWork[NotificationsUnitOfWork]) -> APIRouter:
    api = APIRouter(tags=["rules"], responses=SIGN_IN_ERRORS)

    @api.get("/rules", summary="The rules in force, in order (their version in the ETag)")
    async def list_rules(caller: Authenticated, response: Response) -> RuleSetView:
        caller.require(Role.ADMIN, Role.MANAGER)
        current = await rule_set.in_force(units)
        response.headers["ETag"] = version_etag(current.number)
        return RuleSetView.of(current)

    @api.get("/rules/versions", summary="The rule set's versions, newest first: who put each in force, when")
    async def list_versions(
        caller: Authenticated, limit: Limit = 50, offset: Offset = 0
    ) -> Page[RuleSetVersionRow]:
        caller.require(Role.ADMIN, Role.MANAGER)
        found, total = await rule_set.versions(units, limit=limit, offset=offset)
        return Page(items=[RuleSetVersionRow.of(v) for v in found], total=total, limit=limit, offset=offset)

    @api.get("/rules/versions/{number}", summary="One version of the rule set, whole", responses=ERRORS)
    async def get_version(number: VersionNumber, caller: Authenticated) -> RuleSetView:
        caller.require(Role.ADMIN, Role.MANAGER)
        return RuleSetView.of(await rule_set.version(units, number))

    @api.get(
        "/rules/{rule_id}", summary="One rule in force (the rule set's version in the ETag)", responses=ERRORS
    )
    async def get_rule(rule_id: RuleId, caller: Authenticated, response: Response) -> RuleView:
        caller.require(Role.ADMIN, Role.MANAGER)
        current = await rule_set.in_force(units)
        response.headers["ETag"] = version_etag(current.number)
        return RuleView.of(current.rule(rule_id), current.number)

    @api.post(
        "/rules", status_code=201, summary="Add a rule after the others: a new version", responses=ERRORS
    )
    async def add_rule(
        body: NewRule, caller: Authenticated, response: Response, if_match: IfMatch = None
    ) -> RuleView:
        caller.require(Role.ADMIN)
        changed = await rule_set.add_rule(units, body.rule(body.id), caller.actor, edited_version(if_match))
        response.headers["ETag"] = version_etag(changed.number)
        return RuleView.of(changed.rule(body.id), changed.number)

    @api.put("/rules/{rule_id}", summary="Replace a rule in its place: a new version", responses=ERRORS)
    async def replace_rule(
        rule_id: RuleId, body: RuleChange, caller: Authenticated, response: Response, if_match: IfMatch = None
    ) -> RuleView:
        caller.require(Role.ADMIN)
        changed = await rule_set.replace_rule(
            units, body.rule(rule_id), caller.actor, edited_version(if_match)
        )
        response.headers["ETag"] = version_etag(changed.number)
        return RuleView.of(changed.rule(rule_id), changed.number)

    @api.post(
        "/rules/{rule_id}/preview",
        summary="Who would get what from a sample event: nothing is recorded or sent",
        responses=ERRORS,
    )
    async def preview_rule(rule_id: RuleId, body: PreviewRequest, caller: Authenticated) -> PreviewView:
        caller.require(Role.ADMIN)
        trigger = (await rule_set.in_force(units)).rule(rule_id).trigger
        shown = await rule_set.preview(units, rule_id, _sample_event(trigger, body.event))
        deliveries: list[PreviewDelivery] = []
        for d in shown.deliveries:
            m = d.message
            if isinstance(m, Email):
                deliveries.append(
                    PreviewDelivery(
                        channel=d.channel.value,
                        recipient=d.recipient,
                        rule=d.rule,
                        subject=m.subject,
                        body=m.body,
                        html=m.html,
                        skipped=d.skipped,
                    )
                )
            elif isinstance(m, WebhookPost):
                deliveries.append(
                    PreviewDelivery(
                        channel=d.channel.value, recipient=d.recipient, rule=d.rule, body=m.body, url=m.url
                    )
                )
            else:
                # A chat's URL is a credential of the settings: the preview shows the body alone.
                deliveries.append(
                    PreviewDelivery(channel=d.channel.value, recipient=d.recipient, rule=d.rule, body=m.body)
                )
        return PreviewView(
            matched=shown.matched,
            deliveries=deliveries,
            tasks=[t.model_dump(mode="json") for t in shown.tasks],
            notes=list(shown.notes),
        )

    return api
