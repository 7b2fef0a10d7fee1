"""A local OpenID Connect issuer for the dev stack and the tests: keys generated at start, the discovery
document and the JWKS served over HTTP, and signed tokens on request (``kariz-dev token``).

It signs with an RSA key (RS256) and an EC P-256 key (ES256) and publishes both; the services check its
tokens exactly as they check Keycloak's or Entra ID's (``kariz_shared.runtime.auth``). Never used in
production: it lives in the devkit, which no service image installs.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "kariz"
DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/.well-known/jwks.json"


class LocalIssuer:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, audience: str = AUDIENCE) -> None:
        self.host, self.port, self.audience = host, port, audience
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.kids = {
            "RS256": f"dev-rs256-{uuid.uuid4().hex[:8]}",
            "ES256": f"dev-es256-{uuid.uuid4().hex[:8]}",
        }
        self._server: ThreadingHTTPServer | None = None

    # --- serving -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def jwks(self) -> dict[str, Any]:
        published = {
            "RS256": json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key())),
            "ES256": json.loads(ECAlgorithm.to_jwk(self.ec.public_key())),
        }
        return {
            "keys": [
                {**jwk, "kid": self.kids[alg], "alg": alg, "use": "sig"} for alg, jwk in published.items()
            ]
        }

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}{JWKS_PATH}",
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }

    def start(self) -> LocalIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = {DISCOVERY_PATH: issuer.discovery, JWKS_PATH: issuer.jwks}.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                payload = json.dumps(body()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="kariz-dev-issuer", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def environment(self) -> dict[str, str]:
        """What a service process needs to accept this issuer's tokens."""
        return {"KARIZ_AUTH_ISSUER": self.url, "KARIZ_AUTH_AUDIENCE": self.audience}

    # --- tokens ------------------------------------------------------------------------------------

    def token(
        self,
        user: str,
        roles: Iterable[str] = ("rep",),
        *,
        team: str | None = None,
        ttl_s: float = 3600,
        audience: str | None = None,
        algorithm: str = "RS256",
        not_before_s: float = 0,
        extra: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": audience or self.audience,
            "sub": user,
            "email": user,
            "roles": list(roles),
            "iat": now,
            "nbf": now + int(not_before_s),
            "exp": now + int(ttl_s),
            "jti": uuid.uuid4().hex,
        }
        if team is not None:
            claims["team"] = team
        claims |= extra or {}
        key = self.rsa if algorithm == "RS256" else self.ec
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": self.kids[algorithm]})

    # --- kept on disk, so `kariz-dev token` signs for the running dev stack --------------------------

    def save(self, path: Path) -> None:
        pem = serialization.Encoding.PEM
        pkcs8 = serialization.PrivateFormat.PKCS8
        none = serialization.NoEncryption()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "url": self.url,
                    "audience": self.audience,
                    "kids": self.kids,
                    "rsa": self.rsa.private_bytes(pem, pkcs8, none).decode(),
                    "ec": self.ec.private_bytes(pem, pkcs8, none).decode(),
                }
            )
        )
        path.chmod(0o600)

    @classmethod
    def load(cls, path: Path) -> LocalIssuer:
        saved = json.loads(path.read_text())
        host, _, port = saved["url"].removeprefix("http://").rpartition(":")
        issuer = cls(host=host, port=int(port), audience=saved["audience"])
        rsa_key = serialization.load_pem_private_key(saved["rsa"].encode(), password=None)
        ec_key = serialization.load_pem_private_key(saved["ec"].encode(), password=None)
        assert isinstance(rsa_key, rsa.RSAPrivateKey) and isinstance(ec_key, ec.EllipticCurvePrivateKey)
        issuer.rsa, issuer.ec, issuer.kids = rsa_key, ec_key, saved["kids"]
        return issuer
