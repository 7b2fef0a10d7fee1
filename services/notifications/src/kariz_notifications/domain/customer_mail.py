"""The e-mails to customers' contacts (content actions): a library piece, or the satisfaction check
after a win; English and Persian, plain text and HTML, each with its unsubscribe link.

They are sandboxed Jinja2 as a rule's templates are (:mod:`templates`), shipped here, and read the
event's fields besides ``customer`` (the contact's name), ``content`` (the piece: title, link,
attachment, description) and ``unsubscribe_url``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kariz_notifications.domain.automation import CustomerMessage
from kariz_notifications.domain.content import Contact, ContentItem
from kariz_notifications.domain.model import Email
from kariz_notifications.domain.templates import EmailTexts, language, render_texts

_PIECE_EN = (
    "{% if content.link %}{{ content.link }}{% else %}Ask us for it by its reference: "
    "{{ content.attachment }}{% endif %}"
)
_PIECE_FA = (
    "{% if content.link %}{{ content.link }}{% else %}با این شناسه از ما بخواهید: "
    "{{ content.attachment }}{% endif %}"
)
_PIECE_HTML = (
    '{% if content.link %}<a href="{{ content.link }}">{{ content.title }}</a>'
    "{% else %}{{ content.title }} ({{ content.attachment }}){% endif %}"
)

TEXTS: dict[CustomerMessage, dict[str, EmailTexts]] = {
    CustomerMessage.CONTENT: {
        "en": EmailTexts(
            subject="{{ content.title }}",
            text=(
                "Dear {{ customer }},\n\nWe thought this would interest you: {{ content.title }}\n"
                "{% if content.description %}{{ content.description }}\n{% endif %}"
                f"{_PIECE_EN}\n\n"
                "You receive this because you agreed to hear from us. To receive no more: "
                "{{ unsubscribe_url }}\n"
            ),
            html=(
                "<p>Dear {{ customer }},</p><p>We thought this would interest you: "
                f"{_PIECE_HTML}</p>"
                "{% if content.description %}<p>{{ content.description }}</p>{% endif %}"
                '<p><small>You receive this because you agreed to hear from us. <a href="'
                '{{ unsubscribe_url }}">Unsubscribe</a></small></p>'
            ),
        ),
        "fa": EmailTexts(
            subject="{{ content.title }}",
            text=(
                "{{ customer }} گرامی،\n\nفکر کردیم این برایتان جالب باشد: {{ content.title }}\n"
                "{% if content.description %}{{ content.description }}\n{% endif %}"
                f"{_PIECE_FA}\n\n"
                "این پیام را دریافت می‌کنید چون با دریافت پیام‌های ما موافقت کرده‌اید. برای لغو اشتراک: "
                "{{ unsubscribe_url }}\n"
            ),
            html=(
                "<p>{{ customer }} گرامی،</p><p>فکر کردیم این برایتان جالب باشد: "
                f"{_PIECE_HTML}</p>"
                "{% if content.description %}<p>{{ content.description }}</p>{% endif %}"
                '<p><small>این پیام را دریافت می‌کنید چون با دریافت پیام‌های ما موافقت کرده‌اید. <a href="'
                '{{ unsubscribe_url }}">لغو اشتراک</a></small></p>'
            ),
        ),
    },
    CustomerMessage.SATISFACTION: {
        "en": EmailTexts(
            subject="How is your start with us going, {{ customer }}?",
            text=(
                "Dear {{ customer }},\n\nThank you for choosing us{% if account_name is defined %} "
                "for {{ account_name }}{% endif %}. How is the onboarding going? Just reply to this e-mail: "
                "we read every answer.\n\n"
                "To receive no more e-mails like this: {{ unsubscribe_url }}\n"
            ),
            html=(
                "<p>Dear {{ customer }},</p><p>Thank you for choosing us{% if account_name is defined %} "
                "for {{ account_name }}{% endif %}. How is the onboarding going? Just reply to this e-mail: "
                'we read every answer.</p><p><small><a href="{{ unsubscribe_url }}">Unsubscribe</a>'
                "</small></p>"
            ),
        ),
        "fa": EmailTexts(
            subject="{{ customer }}، شروع همکاری با ما چطور پیش می‌رود؟",
            text=(
                "{{ customer }} گرامی،\n\n"
                "از اینکه ما را انتخاب کردید سپاسگزاریم. راه‌اندازی چطور پیش "
                "می‌رود؟ کافی است به همین نامه پاسخ دهید؛ همهٔ پاسخ‌هایتان را می‌خوانیم.\n\n"
                "برای لغو اشتراک: {{ unsubscribe_url }}\n"
            ),
            html=(
                "<p>{{ customer }} گرامی،</p><p>از اینکه ما را انتخاب کردید سپاسگزاریم. راه‌اندازی چطور "
                "پیش می‌رود؟ کافی است به همین نامه پاسخ دهید؛ همهٔ پاسخ‌هایتان را می‌خوانیم.</p>"
                '<p><small><a href="{{ unsubscribe_url }}">لغو اشتراک</a></small></p>'
            ),
        ),
    },
}


def customer_email(
    message: CustomerMessage,
    fields: Mapping[str, Any],
    contact: Contact,
    item: ContentItem | None,
    unsubscribe_url: str,
) -> Email:
    """The e-mail to ``contact`` in their locale (English when none is known); ``TemplateError`` if a
    value of the event cannot be shown."""
    locale = language(contact.locale)
    piece = None
    if item is not None:
        d = item.draft
        piece = {"id": item.id, "title": d.title, "link": d.link, "attachment": d.attachment}
        piece["description"] = d.description
    variables = {**fields, "customer": contact.name, "content": piece, "unsubscribe_url": unsubscribe_url}
    shown = render_texts(TEXTS[message][locale], variables, locale)
    return Email(
        to=contact.email, subject=shown.subject, body=shown.text, html=shown.html, unsubscribe=unsubscribe_url
    )
