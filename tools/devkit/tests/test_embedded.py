"""One embedded database process per service: own port, own data, one restarted without the others."""

from __future__ import annotations

from pathlib import Path

from pymongo import MongoClient

from kariz_devkit.devstack import database_ports
from kariz_devkit.embedded import EmbeddedBackends, free_port
from kariz_devkit.testing import Backends
from kariz_shared.system import SERVICE_NAMES


def test_the_dev_stack_gives_every_service_of_the_registry_a_port_of_its_own() -> None:
    ports = database_ports(27017)
    assert list(ports) == list(SERVICE_NAMES)
    assert sorted(ports.values()) == list(range(27017, 27017 + len(SERVICE_NAMES)))


def test_each_service_has_a_database_process_of_its_own(tmp_path: Path) -> None:
    running = EmbeddedBackends(
        kafka_port=free_port(),
        mongodb_port=free_port(),
        data_dir=tmp_path,
        service_databases={name: free_port() for name in SERVICE_NAMES},
        sync_on_commit=True,  # as the dev stack: a SIGKILL loses nothing acknowledged
    ).start()
    try:
        assert running.database_names == [f"database-{name}" for name in SERVICE_NAMES]
        uris = running.mongodb_uris
        assert len(set(uris.values())) == len(SERVICE_NAMES)
        first, second = SERVICE_NAMES[0], SERVICE_NAMES[1]
        with MongoClient(uris[first]) as a, MongoClient(uris[second]) as b:
            a.kariz_probe.items.insert_one({"_id": "written in the first"})
            assert b.kariz_probe.items.find_one({"_id": "written in the first"}) is None
        # Killed and brought back alone, a service's database keeps its data; the others stay up.
        running.take_down(f"database-{first}", kill=True)
        with MongoClient(uris[second]) as b:
            b.kariz_probe.items.insert_one({"_id": "while the first was down"})
        running.bring_up(f"database-{first}")
        with MongoClient(uris[first]) as a:
            assert a.kariz_probe.items.find_one({"_id": "written in the first"}) is not None
        assert {p.name for p in running.processes} == {"broker", *running.database_names}
        # The test support's view of the same: each service's settings point at its own server.
        backends = Backends(running.kafka_bootstrap, uris[first], kafka_idempotence=False, mongodb_uris=uris)
        assert {name: backends.settings(name)["mongodb_uri"] for name in SERVICE_NAMES} == uris
    finally:
        running.stop()
    assert (tmp_path / f"mongodb-{first}").is_dir() and not (tmp_path / "mongodb").exists()
