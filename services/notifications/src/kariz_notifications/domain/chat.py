"""Chat messages in each service's own format: a Slack incoming webhook takes ``text`` (the fallback a
notification shows) and Block Kit ``blocks``; a Microsoft Teams workflow webhook ("Post to a channel when
a webhook request is received") takes a ``message`` with an Adaptive Card attachment."""

from __future__ import annotations

import json
from typing import Any

from kariz_notifications.domain.model import ChatKind

#: Slack's limit on a section block's text.
SLACK_SECTION_MAX = 3000
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"


def slack_body(title: str, text: str) -> dict[str, Any]:
    return {
        "text": f"{title}\n{text}"[:SLACK_SECTION_MAX],
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": text[:SLACK_SECTION_MAX] or " "}},
        ],
    }


def teams_body(title: str, text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": ADAPTIVE_CARD,
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "text": title,
                            "weight": "Bolder",
                            "size": "Medium",
                            "wrap": True,
                        },
                        {"type": "TextBlock", "text": text, "wrap": True},
                    ],
                },
            }
        ],
    }


def chat_body(kind: ChatKind, title: str, text: str) -> str:
    """The JSON text posted to a chat of ``kind``."""
    body = slack_body(title, text) if kind is ChatKind.SLACK else teams_body(title, text)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
