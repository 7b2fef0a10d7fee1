"""Settings from the environment, all under one prefix: ``KARIZ_``.

A service subclasses :class:`ServiceSettings` and adds its own fields; every field is read from
``KARIZ_<FIELD>`` (for example ``KARIZ_KAFKA_BOOTSTRAP_SERVERS``).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from uuid import uuid4

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "KARIZ_"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    service_name: str = "kariz"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = "INFO"

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # On for real Kafka; the embedded Tansu broker cannot do InitProducerId, so the dev stack turns it off.
    kafka_enable_idempotence: bool = True
    kafka_topic_partitions: int = 3
    kafka_replication_factor: int = 1
    # Creating topics is the platform's job in production (Strimzi KafkaTopic); the dev stack does it.
    kafka_create_topics: bool = False
    # Consumer groups are "<prefix>-<service>.<event>": a second environment on the same cluster (or a test)
    # takes its own prefix so it never shares partitions with another.
    kafka_group_prefix: str = "kariz"
    # Consumer liveness. Real Kafka: the client defaults. The embedded broker does not honour LeaveGroup, so a
    # restarted consumer waits a whole session timeout to rejoin; the dev stack and tests shorten both.
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 3_000
    # How long the broker may hold a fetch that found nothing new. Real Kafka answers as soon as a record
    # arrives, so the client default costs no latency there. The embedded broker holds the fetch anyway
    # (p50 129 ms a hop at 500, 4 ms at 10), but a shorter wait makes smaller batches and more polls, which
    # cost its database more per lead than the hops gain (README, Performance): the default stays.
    kafka_fetch_max_wait_ms: int = 500
    # Transport security (README, "Production security settings"). All off by default: the embedded broker
    # of `make run` and the tests speaks plaintext without authentication. Strimzi's listener: TLS + SCRAM.
    kafka_tls: bool = False
    # The CA that signed the brokers' certificates (Strimzi: <cluster>-cluster-ca-cert, key ca.crt); empty
    # trusts the system's CAs. The brokers' host names are checked against their certificates either way.
    kafka_tls_ca_file: str = ""
    # A client certificate and key (PEM), for a listener that authenticates clients by TLS, not SASL.
    kafka_tls_cert_file: str = ""
    kafka_tls_key_file: str = ""
    # SASL SCRAM-SHA-512, Strimzi's scram-sha-512 (the password never crosses the wire): on when a username
    # is set. The password from KARIZ_KAFKA_SASL_PASSWORD, or read from the file named by
    # KARIZ_KAFKA_SASL_PASSWORD_FILE (a mounted secret keeps it out of the process environment).
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_sasl_password_file: str = ""

    mongodb_uri: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    # Empty means "kariz_<service_name>": each service owns its own database.
    mongodb_database: str = ""
    mongodb_timeout_ms: int = 5000
    # Transport security and credentials beside the URI (README, "Production security settings"); whatever
    # the URI already says (the MongoDB operator's connection string carries the user and ssl=) stands
    # unless set here. True forces TLS; a CA or client certificate file turns it on too (PyMongo's rule).
    mongodb_tls: bool = False
    mongodb_tls_ca_file: str = ""
    # The client's certificate and key in one PEM file, for X.509 authentication or mutual TLS.
    mongodb_tls_certificate_key_file: str = ""
    # Set, these take precedence over credentials in the URI; the password as for Kafka (or its file).
    mongodb_username: str = ""
    mongodb_password: SecretStr = SecretStr("")
    mongodb_password_file: str = ""
    # Where the user is defined: the operator creates every user in ``admin``.
    mongodb_auth_source: str = "admin"
    # Bounds one unit of work, retries on write conflicts included: an HTTP write during a database outage
    # answers 503 after this long instead of hanging (PyMongo's own limit is two minutes).
    mongodb_transaction_timeout_s: float = 10.0
    # The same bound for a consumed event's transaction; the consumer retries after it (a transient failure).
    consumer_transaction_timeout_s: float = 60.0

    outbox_poll_interval_s: float = 0.5
    outbox_batch_size: int = 200
    # One replica at a time publishes the outbox; a dead holder's lease runs out after this long.
    outbox_lease_s: float = 10.0
    # A batch not acknowledged within this is sent again (at least once; consumers drop repeats).
    outbox_publish_timeout_s: float = 30.0
    # Names this process among the replicas (the relay lease owner): host (a pod's name), pid and a random
    # part, so two replicas never pass for one, not even in one process.
    instance_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid4().hex[:6]}"
    )
    # Bounded retries before a message whose handler keeps failing goes to the dead letters.
    consumer_max_attempts: int = 5
    consumer_retry_backoff_s: float = 0.2
    # Records taken from Kafka at once and handled in one transaction (1: one transaction per record). A
    # batch is whatever has arrived, up to this many: at low load it is one record and waits for nothing.
    # Most of what batching saves (a commit, the markers' and the outbox's writes) is saved by 25; larger
    # transactions only hold more under a busy database (one that times out is split, see consumer.py).
    consumer_batch_max_records: int = Field(default=25, ge=1)
    # How long an idle consumer waits for records before it looks again: the latency a first event after a
    # quiet spell can pay, against the polls an idle service makes.
    consumer_batch_timeout_ms: int = Field(default=20, ge=1)
    shutdown_grace_s: float = 10.0
    # Start-up waits for the database and the broker, retrying with backoff from the first to the second.
    startup_retry_initial_s: float = 0.5
    startup_retry_max_s: float = 5.0
    # How often gauges read from the database (pipeline value, newest lead) are refreshed.
    metrics_refresh_interval_s: float = 15.0
    # Timers (reminders, SLAs, expiries): a worker that claimed due timers and died leaves them to another
    # replica once this lease runs out.
    timer_lease_s: float = Field(default=30.0, gt=0)
    # Due timers fired in one transaction.
    timer_batch_max: int = Field(default=100, ge=1)
    # The longest a timer worker sleeps unwoken: a timer that another replica armed earlier than this
    # replica's next one waits at most this long. Timers armed by this process wake its worker at once.
    timer_idle_s: float = Field(default=30.0, gt=0)

    # Signing in (OIDC; README, "Signing in"). A token must come from this issuer (its ``iss``) for this
    # audience (``aud``); its keys are read from KARIZ_AUTH_JWKS_URL or, when that is empty, from the
    # issuer's discovery document. Empty issuer: nothing is accepted (there is no "auth off").
    auth_issuer: str = ""
    auth_audience: str = "kariz"
    auth_jwks_url: str = ""
    # Where the token carries the person (their e-mail address: the owner of their leads and deals), their
    # roles and their team; a dotted path reaches into an object (Keycloak: ``realm_access.roles``).
    auth_subject_claim: str = "sub"
    auth_roles_claim: str = "roles"
    auth_team_claim: str = "team"
    # Clock skew allowed on exp/nbf, and how long the issuer's key set is kept before it is read again.
    auth_leeway_s: float = Field(default=30.0, ge=0, le=300)
    auth_jwks_cache_s: float = Field(default=300.0, gt=0)
    # A token naming a key the cached set lacks reads the set again (a rotated key), at most this often:
    # a flood of made-up key ids does not become a flood of requests to the identity provider.
    auth_jwks_refetch_s: float = Field(default=30.0, ge=0)
    # KARIZ_TEAMS: the roster's seed, team -> rep addresses (JSON), e.g. {"emea": ["alex@kariz.example"]};
    # a manager sees the leads and deals of their team's reps.
    teams: dict[str, list[str]] = {}
    # The roster at runtime: every replica reads kariz.reps.v1 (the leads service's /reps) from its
    # beginning and keeps following it; a rep it names is in the team their newest profile says, and
    # KARIZ_TEAMS speaks only for addresses it never named (README, "Teams and the roster"). Off: the
    # roster is KARIZ_TEAMS alone.
    roster_follow: bool = True
    # Readiness waits for a state topic (the roster) to be read up to the end it had at start, at most
    # this long from the reader's start: past it, a missing topic or a broker that does not answer the
    # reader leaves the service ready with what it has (the seed), logged and kariz_state_caught_up 0.
    state_catch_up_s: float = Field(default=30.0, ge=0)
    # How often a state reader looks again for its topic when the broker does not have it yet.
    state_topic_retry_s: float = Field(default=5.0, gt=0)
    # Captures and imports a minute, per caller (person or API key) and per client address, shared by the
    # replicas (counted in the service's database).
    rate_limit_per_minute: int = Field(default=6000, ge=1)
    # /docs and /openapi.json: on in dev (`make run`), off unless asked for elsewhere.
    api_docs: bool = False

    @model_validator(mode="after")
    def _transport_security_is_whole(self) -> ServiceSettings:
        """Passwords read from their files, and no half-configured TLS or login: a mistake stops the start
        with the setting to fix, not a handshake failure at the first connection."""
        self.kafka_sasl_password = read_password(
            self.kafka_sasl_password, self.kafka_sasl_password_file, "KAFKA_SASL"
        )
        self.mongodb_password = read_password(self.mongodb_password, self.mongodb_password_file, "MONGODB")
        tls_files = {
            "KAFKA_TLS_CA_FILE": self.kafka_tls_ca_file,
            "KAFKA_TLS_CERT_FILE": self.kafka_tls_cert_file,
            "KAFKA_TLS_KEY_FILE": self.kafka_tls_key_file,
        }
        given = [f"{ENV_PREFIX}{name}" for name, value in tls_files.items() if value]
        if given and not self.kafka_tls:
            raise ValueError(f"{', '.join(given)} set, but {ENV_PREFIX}KAFKA_TLS is off: turn it on")
        if self.kafka_tls_key_file and not self.kafka_tls_cert_file:
            raise ValueError(f"{ENV_PREFIX}KAFKA_TLS_KEY_FILE needs {ENV_PREFIX}KAFKA_TLS_CERT_FILE")
        for user, password, what in (
            (self.kafka_sasl_username, self.kafka_sasl_password, "KAFKA_SASL"),
            (self.mongodb_username, self.mongodb_password, "MONGODB"),
        ):
            if user and not password.get_secret_value():
                raise ValueError(
                    f"{ENV_PREFIX}{what}_USERNAME is set without a password: set {ENV_PREFIX}{what}_PASSWORD "
                    f"or {ENV_PREFIX}{what}_PASSWORD_FILE"
                )
        return self

    def consumer_group(self, event_kebab_name: str) -> str:
        return f"{self.kafka_group_prefix}-{self.service_name}.{event_kebab_name}"

    @property
    def database_name(self) -> str:
        return self.mongodb_database or f"kariz_{self.service_name}"


def read_password(value: SecretStr, file: str, what: str) -> SecretStr:
    """A password given as itself or as the path of a file holding it (a Kubernetes secret volume, Vault
    agent), not both. Trailing line breaks in the file are not part of it."""
    if not file:
        return value
    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{ENV_PREFIX}{what}_PASSWORD_FILE: cannot read {file}: {exc.strerror}") from exc
    secret = text.rstrip("\r\n")
    if not secret:
        raise ValueError(f"{ENV_PREFIX}{what}_PASSWORD_FILE: {file} is empty")
    # Settings validated again (a copy of settings made from their values) carry the file's password.
    if value.get_secret_value() not in ("", secret):
        raise ValueError(f"set {ENV_PREFIX}{what}_PASSWORD or {ENV_PREFIX}{what}_PASSWORD_FILE, not both")
    return SecretStr(secret)
