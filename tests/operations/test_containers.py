"""The Dockerfiles and the compose file, checked statically: there is no Docker here or in CI to build
or run them. The compose file must satisfy the Compose specification's schema (vendored from the
docker-compose 1.29.2 wheel) and run each service from its own Dockerfile with the settings real Kafka
needs; each Dockerfile must be multi-stage, install with uv from the lock file, and run as a non-root user.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kariz_shared.system import SERVICE_NAMES as SERVICES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"


def compose_file() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    return loaded


def test_compose_file_satisfies_the_compose_schema() -> None:
    schema = json.loads((COMPOSE / "compose-spec.schema.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{e.message} at {list(e.absolute_path)}" for e in validator.iter_errors(compose_file())]
    assert not errors, errors
    broken = compose_file()
    broken["services"]["leads"]["port"] = ["8001:8000"]
    assert list(validator.iter_errors(broken)), "the schema must reject an unknown key"


def test_compose_runs_every_service_on_real_kafka_with_what_it_needs() -> None:
    services = compose_file()["services"]
    for name in SERVICES:
        service = services[name]
        dockerfile = ROOT / service["build"]["dockerfile"]
        assert dockerfile == ROOT / "services" / name / "Dockerfile" and dockerfile.exists()
        env = service["environment"]
        assert env["KARIZ_KAFKA_ENABLE_IDEMPOTENCE"] == "true"
        assert env["KARIZ_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert "replicaSet=" in env["KARIZ_MONGODB_URI"], "transactions need a replica set"
        assert set(service["depends_on"]) == {"kafka", "mongodb"}
    for mounted in ("prometheus", "grafana"):
        for volume in services[mounted]["volumes"]:
            source = volume.split(":")[0]
            assert (COMPOSE / source).resolve().exists(), f"{mounted} mounts {source}, which is missing"


@pytest.mark.parametrize("name", SERVICES)
def test_dockerfile_is_multi_stage_uv_locked_non_root(name: str) -> None:
    text = (ROOT / "services" / name / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE)
    assert len(stages) >= 2, "build and runtime stages"
    runtime = text.split(f"FROM {stages[-1][0]}", 1)[1]
    assert "uv sync --frozen --no-dev" in text, "installs from uv.lock, without the dev tools"
    assert f"--package kariz-{name}" in text
    assert "COPY --from=build /app/.venv" in runtime, "the runtime stage takes only the environment"
    [user] = re.findall(r"^USER\s+(\S+)", runtime, re.MULTILINE)
    assert not user.startswith(("0", "root")), "must not run as root"
    assert re.search(rf'^ENTRYPOINT \["kariz-{name}"\]', runtime, re.MULTILINE)
    for copied in re.findall(r"^COPY (?!--from)(\S+)", text, re.MULTILINE):
        assert (ROOT / copied).exists(), f"{name}: COPY {copied} names nothing in the repository"
