"""Unsubscribe links: every content e-mail carries one, and the token in it is the only credential its
public route (``/unsubscribe/{token}``) takes.

The token is the lead, the address and the content, signed with HMAC-SHA256 under the settings' secret
(``itsdangerous``, with a salt of its own so no other signature of the service can stand for it):
unguessable without the secret, and a token edited by hand fails its signature. It never expires: a
link in an old e-mail must still unsubscribe.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

from kariz_shared.contracts.errors import RuleViolation

SALT = "kariz.notifications.unsubscribe.v1"
#: The unsubscribe route, below the public base URL.
PATH = "/unsubscribe/"
MAX_TOKEN_CHARS = 1000


class BadToken(RuleViolation):
    """A token that is not one this service signed (forged, edited, cut short)."""


@dataclass(frozen=True)
class Unsubscription:
    """What a good token says: whose contact and which content's link it was."""

    lead_id: str
    email: str
    content_id: str | None


class UnsubscribeLinks:
    """Makes and reads the unsubscribe tokens under one secret; ``base_url`` is where the route is
    reached from the contact's mail client."""

    def __init__(self, secret: str, base_url: str) -> None:
        self._serializer = URLSafeSerializer(secret, salt=SALT)
        self.base_url = base_url.rstrip("/")

    def token(self, lead_id: str, email: str, content_id: str | None) -> str:
        return str(self._serializer.dumps({"l": lead_id, "e": email, "c": content_id}))

    def link(self, lead_id: str, email: str, content_id: str | None) -> str:
        return f"{self.base_url}{PATH}{self.token(lead_id, email, content_id)}"

    def read(self, token: str) -> Unsubscription:
        """The unsubscription ``token`` names; :class:`BadToken` (422 naming the token) when it was not
        signed here."""
        if len(token) > MAX_TOKEN_CHARS:
            raise BadToken("token: not an unsubscribe token of Kariz (too long)")
        try:
            data = self._serializer.loads(token)
        except BadSignature as exc:
            raise BadToken("token: not an unsubscribe token of Kariz (its signature does not match)") from exc
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("l", "e")):
            raise BadToken("token: not an unsubscribe token of Kariz")
        content = data.get("c")
        return Unsubscription(data["l"], data["e"], content if isinstance(content, str) else None)
