"""AsyncAPI 3.0 document of a service, generated from its code (FastStream's spec + the event models).

``kariz-asyncapi SERVICE... --out docs/asyncapi --events-out docs/events`` writes ``<service>.json`` for
each, and the JSON Schema of every event version as ``<topic>.schema.json`` (see
:mod:`kariz_shared.contracts.compatibility`); ``make asyncapi`` does it for all four.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from faststream.specification import AsyncAPI

from kariz_shared.contracts.compatibility import ContractBroken, write_event_schemas
from kariz_shared.contracts.events import json_schema
from kariz_shared.service import Service
from kariz_shared.system import SERVICE_NAMES, service


def build_service(name: str) -> Service:
    module = importlib.import_module(service(name).bootstrap)
    built: Service = module.build()
    return built


def document(service: Service) -> dict[str, Any]:
    spec = AsyncAPI(
        service.broker,
        title=f"Kariz {service.name}",
        version=service.version,
        description=service.description,
        schema_version="3.0.0",
    )
    doc: dict[str, Any] = json.loads(spec.to_specification().to_json())
    # The document describes the interface, not one machine: name the setting, not this host's value.
    for server in doc.get("servers", {}).values():
        server["host"] = "kafka:9092"
        server["description"] = "The Kafka cluster named by KARIZ_KAFKA_BOOTSTRAP_SERVERS"
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    messages = doc["components"].setdefault("messages", {})
    # Consumers read raw bytes (to dead-letter what does not parse), so FastStream cannot see their
    # payload type: name the event model here.
    for cls in [*service.consumes, *service.publishes]:
        schema = json_schema(cls)
        for name, sub in schema.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        schemas[cls.__name__] = schema
    consumed = {cls.topic(): cls for cls in service.consumes}
    for channel in doc.get("channels", {}).values():
        cls = consumed.get(channel.get("address", ""))
        if cls is None:
            continue
        for ref in channel.get("messages", {}).values():
            message = messages[ref["$ref"].rsplit("/", 1)[-1]]
            message["payload"] = {"$ref": f"#/components/schemas/{cls.__name__}"}
    for message in messages.values():
        message["headers"] = _cloudevents_headers()
    schemas.pop("EmptyPayload", None)
    return _rewrite_refs(doc)


def _cloudevents_headers() -> dict[str, Any]:
    string = {"type": "string"}
    return {
        "type": "object",
        "description": "CloudEvents 1.0 attributes in Kafka binary mode",
        "required": [
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_specversion",
            "ce_time",
            "ce_subject",
            "content-type",
        ],
        "properties": {
            "ce_id": {**string, "description": "Event id, unique; consumers drop repeats by it"},
            "ce_source": {**string, "description": "/kariz/<service>"},
            "ce_type": {**string, "description": "Equals the topic, e.g. kariz.lead-captured.v1"},
            "ce_specversion": {**string, "const": "1.0"},
            "ce_time": {**string, "format": "date-time"},
            "ce_subject": {**string, "description": "The aggregate id, also the Kafka key"},
            "ce_correlationid": {**string, "description": "Follows one lead through the whole cycle"},
            "ce_causationid": {**string, "description": "ce_id of the event that caused this one"},
            "ce_actor": {
                **string,
                "description": "Who made the change: a signed-in person's subject (their e-mail address), "
                "key:<id> for a machine's API key, or the service's own ce_source for what it did by "
                "itself (a consumed event, a timer)",
            },
            "ce_onbehalfof": {
                **string,
                "description": "For a machine's change (ce_actor key:<id>): whom its key acts for",
            },
            "content-type": {**string, "const": "application/json"},
        },
    }


def _rewrite_refs(node: Any) -> Any:
    """pydantic writes ``#/$defs/X``; in AsyncAPI the shared schemas live in components."""
    if isinstance(node, dict):
        return {
            k: (
                v.replace("#/$defs/", "#/components/schemas/")
                if k == "$ref" and isinstance(v, str)
                else _rewrite_refs(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def topics_of(doc: dict[str, Any]) -> dict[str, set[str]]:
    """Topics a document says the service sends to and receives from."""
    result: dict[str, set[str]] = {"send": set(), "receive": set()}
    channels = doc.get("channels", {})
    for op in doc.get("operations", {}).values():
        channel = channels[op["channel"]["$ref"].rsplit("/", 1)[-1]]
        result[op["action"]].add(channel["address"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("services", nargs="*", default=list(SERVICE_NAMES))
    parser.add_argument("--out", default="docs/asyncapi")
    parser.add_argument("--events-out", default="docs/events", help="where the event schemas go")
    parser.add_argument(
        "--allow-breaking",
        action="store_true",
        help="overwrite committed event schemas even with breaking changes (only for unreleased versions)",
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.services:
        path = out / f"{name}.json"
        path.write_text(json.dumps(document(build_service(name)), indent=2, sort_keys=True) + "\n")
        print(f"wrote {path}")
    try:
        schemas = write_event_schemas(Path(args.events_out), allow_breaking=args.allow_breaking)
    except ContractBroken as exc:
        sys.exit(f"kariz-asyncapi: {exc}")
    for path in schemas:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
