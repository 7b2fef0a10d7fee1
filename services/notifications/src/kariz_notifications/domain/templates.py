"""The e-mail templates of runtime rules: sandboxed Jinja2 (a template is text an admin typed; it may
read the event's fields, never the process), strict about names (a variable the event does not have is
an error, found when the rule is saved: :func:`check_texts` renders against a sample of the event).

A template reads the event's fields by name (``{{ lead_id }}``, ``{{ company.industry }}``) and three
filters that show a value in the reader's locale and time zone: ``when`` (a time: the Persian calendar
and digits in ``fa``), ``number`` (Persian digits in ``fa``) and ``money``. A Persian e-mail's HTML part
is right to left.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

import jdatetime
from jinja2 import StrictUndefined, Template, pass_context
from jinja2 import TemplateError as JinjaError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

#: Locales templates ship in; a reader's locale tag (``fa-IR``) is matched by its language.
LOCALES = ("en", "fa")
#: Locales written right to left.
RTL = frozenset({"fa"})
PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
MAX_TEMPLATE_CHARS = 20_000


class TemplateError(ValueError):
    """A template that cannot render: ``part`` is subject, text or html."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(message)
        self.part = part


@dataclass(frozen=True)
class EmailTexts:
    subject: str
    text: str
    html: str | None = None


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str | None


def language(locale: str | None) -> str:
    """The shipped locale a reader's tag falls to: ``fa-IR`` → ``fa``; unknown → ``en``."""
    lang = (locale or "en").replace("_", "-").split("-")[0].lower()
    return lang if lang in LOCALES else "en"


def persian_digits(text: str) -> str:
    return text.translate(PERSIAN_DIGITS)


@pass_context
def _when(context: Context, value: Any) -> str:
    if not isinstance(value, datetime):
        return str(value)
    zone: tzinfo = context.get("_zone", UTC)
    local = value.astimezone(zone)
    if context.get("_locale") == "fa":
        shown = jdatetime.datetime.fromgregorian(datetime=local, locale="fa_IR").strftime("%d %B %Y، %H:%M")
        return persian_digits(f"{shown} ({zone})")
    return f"{local:%Y-%m-%d %H:%M} ({zone})"


@pass_context
def _number(context: Context, value: Any) -> str:
    shown = f"{value:,}" if isinstance(value, int | Decimal) and not isinstance(value, bool) else str(value)
    return persian_digits(shown) if context.get("_locale") == "fa" else shown


@pass_context
def _money(context: Context, amount: Any, currency: str = "") -> str:
    shown = f"{Decimal(str(amount)):,.2f}" if amount is not None else "-"
    if context.get("_locale") == "fa":
        shown = persian_digits(shown)
    return f"{shown} {currency}".strip()


def _environment(autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=autoescape)
    env.filters.update(when=_when, number=_number, money=_money)
    return env


_TEXT = _environment(autoescape=False)
# The HTML part escapes every value: a company named "<script>" is shown, never run.
_HTML = _environment(autoescape=True)


@functools.lru_cache(maxsize=1024)
def _compiled(env: SandboxedEnvironment, source: str) -> Template:
    """A template compiled once per process: every e-mail of a rule renders the same source."""
    return env.from_string(source)


def _render(env: SandboxedEnvironment, part: str, source: str, variables: Mapping[str, Any]) -> str:
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(part, f"at most {MAX_TEMPLATE_CHARS} characters")
    try:
        return _compiled(env, source).render(variables)
    except JinjaError as exc:
        raise TemplateError(part, exc.message or type(exc).__name__) from exc
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise TemplateError(part, f"{type(exc).__name__}: {exc}") from exc


def render_texts(
    texts: EmailTexts, fields: Mapping[str, Any], locale: str, zone: tzinfo = UTC
) -> RenderedEmail:
    """The e-mail ``texts`` make of an event's ``fields``, for a reader of ``locale`` in ``zone``."""
    variables = {**fields, "_locale": locale, "_zone": zone}
    subject = " ".join(_render(_TEXT, "subject", texts.subject, variables).split())
    if not subject:
        raise TemplateError("subject", "renders empty")
    text = _render(_TEXT, "text", texts.text, variables)
    html = None
    if texts.html is not None:
        body = _render(_HTML, "html", texts.html, variables)
        direction = "rtl" if locale in RTL else "ltr"
        html = (
            f'<!DOCTYPE html><html lang="{locale}" dir="{direction}">'
            f'<body dir="{direction}">{body}</body></html>'
        )
    return RenderedEmail(subject=subject, text=text, html=html)


def check_texts(texts: EmailTexts, sample: Mapping[str, Any], locale: str) -> None:
    """Refuse (:class:`TemplateError`) texts that would not render for the event ``sample`` is of."""
    if locale not in LOCALES:
        raise TemplateError("locale", f"templates ship in {', '.join(LOCALES)}")
    render_texts(texts, sample, locale)
