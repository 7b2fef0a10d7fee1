"""The committed event contracts and the check that a change to an event keeps them.

Every event version's JSON Schema (the wire form: what producers write) is committed as
``docs/events/<topic>.schema.json``; ``make asyncapi`` writes them with the AsyncAPI documents, and
refuses to overwrite one with a breaking change (so regenerating cannot hide one). A
consumer written against a committed schema must keep reading what the current model produces, and the
current model must keep reading the old events still in the topics (replays, a consumer starting from the
beginning). :func:`breaking_changes` compares the two and names what breaks either:

- a required field removed, or made optional (an old consumer relies on it);
- an optional field made required, or a new required field without a default (old events lack it);
- a type changed (``null`` included: a field that may now be null breaks an old consumer);
- an enum value added (an old consumer cannot read it) or removed (old events no longer validate);
- a ``const`` or ``format`` changed;
- any of these inside a nested object or an array's items.

Adding an optional field, or changing a description, is compatible. Anything else is a new version: a
new model with ``version = 2``, so a new topic and its own committed schema, while v1 stays.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kariz_shared.contracts.events import EVENTS, Event, json_schema

DIALECT = "https://json-schema.org/draft/2020-12/schema"
JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")


def event_schema(cls: type[Event]) -> dict[str, Any]:
    """The JSON Schema of one event version as committed: the model's wire form, its topic and key."""
    schema = json_schema(cls)
    return {
        "$schema": DIALECT,
        **schema,
        "description": cls.description,
        "x-kariz-topic": cls.topic(),
        "x-kariz-key": cls.key_field,
    }


def schema_file(directory: Path, topic: str) -> Path:
    return directory / f"{topic}.schema.json"


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


class ContractBroken(Exception):
    """A model no longer keeps its committed schema: it needs a new version, not a new schema."""


def write_event_schemas(
    directory: Path, events: Iterable[type[Event]] | None = None, *, allow_breaking: bool = False
) -> list[Path]:
    """Write ``<topic>.schema.json`` for every event version. A committed schema is only replaced by a
    compatible one, unless ``allow_breaking`` (for a version never released). Schemas of topics no
    longer produced are left alone: they are removed by hand, with the topic."""
    directory.mkdir(parents=True, exist_ok=True)
    chosen = list(events if events is not None else EVENTS.values())
    broken: list[str] = []
    for cls in chosen:
        path = schema_file(directory, cls.topic())
        if path.exists() and not allow_breaking:
            problems = breaking_changes(json.loads(path.read_text()), event_schema(cls))
            broken += [f"{cls.topic()}: {p}" for p in problems]
    if broken:
        raise ContractBroken(
            "these changes break consumers of the committed schemas; make a new version of the event "
            "(a new model with version = 2, so a new topic, and keep v1):\n  " + "\n  ".join(broken)
        )
    written = []
    for cls in chosen:
        path = schema_file(directory, cls.topic())
        path.write_text(render(event_schema(cls)))
        written.append(path)
    return written


def committed_schemas(directory: Path) -> dict[str, dict[str, Any]]:
    """The committed schemas, by topic."""
    return {
        path.name.removesuffix(".schema.json"): json.loads(path.read_text())
        for path in sorted(directory.glob("*.schema.json"))
    }


# --- the compatibility check ----------------------------------------------------------------------


@dataclass(frozen=True)
class BreakingChange:
    path: str
    what: str

    def __str__(self) -> str:
        return f"{self.path or '<event>'}: {self.what}"


@dataclass
class _Shape:
    """What a schema node allows, with ``$ref``, ``allOf`` of one and ``anyOf``/``oneOf`` folded in."""

    types: set[str] = field(default_factory=set)
    enum: set[str] | None = None
    const: str | None = None
    format: str | None = None
    properties: dict[str, tuple[dict[str, Any], dict[str, Any]]] | None = None  # name -> (root, node)
    required: set[str] = field(default_factory=set)
    items: tuple[dict[str, Any], dict[str, Any]] | None = None
    refs: tuple[str, ...] = ()


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    refs: list[str] = []
    while "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise ValueError(f"only local $ref can be compared, not {ref!r}")
        if ref in refs:
            break
        refs.append(ref)
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = {**{k: v for k, v in node.items() if k != "$ref"}, **target}
    return node, tuple(refs)


def _shape(root: dict[str, Any], node: dict[str, Any]) -> _Shape:
    node, refs = _resolve(root, node)
    branches = node.get("anyOf") or node.get("oneOf")
    if node.get("allOf") and len(node["allOf"]) == 1:
        inner = _shape(root, node["allOf"][0])
        inner.refs = refs + inner.refs
        return inner
    if branches:
        shapes = [_shape(root, b) for b in branches]
        shape = _Shape(types=set().union(*(s.types for s in shapes)), refs=refs)
        valued = [s for s in shapes if s.types != {"null"}]
        if valued and all(s.enum is not None for s in valued):
            shape.enum = set().union(*(s.enum or set() for s in valued))
        for s in valued:
            shape.format = shape.format or s.format
            shape.const = shape.const if shape.const is not None else s.const
            if s.properties is not None and shape.properties is None:
                shape.properties, shape.required = s.properties, s.required
            if s.items is not None and shape.items is None:
                shape.items = s.items
            shape.refs += s.refs
        return shape
    declared = node.get("type")
    types = set(declared if isinstance(declared, list) else [declared] if declared else [])
    shape = _Shape(types=types, refs=refs, format=node.get("format"))
    if "enum" in node:
        shape.enum = {json.dumps(v, sort_keys=True) for v in node["enum"]}
        shape.types |= types or {_json_type(v) for v in node["enum"]}
    if "const" in node:
        shape.const = json.dumps(node["const"], sort_keys=True)
        shape.types |= types or {_json_type(node["const"])}
    if "properties" in node or "object" in shape.types:
        shape.types.add("object")
        shape.properties = {name: (root, sub) for name, sub in node.get("properties", {}).items()}
        shape.required = set(node.get("required", []))
    if "items" in node:
        shape.types.add("array")
        shape.items = (root, node["items"])
    if not shape.types:
        shape.types = set(JSON_TYPES)  # {} allows anything
    return shape


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _types(types: set[str]) -> str:
    return "|".join(sorted(types))


def _compare(
    old: _Shape, new: _Shape, path: str, seen: set[tuple[tuple[str, ...], tuple[str, ...], str]]
) -> list[BreakingChange]:
    # A recursive model meets itself again: once compared at a path, the same pair needs no second look.
    key = (old.refs, new.refs, path)
    if (old.refs or new.refs) and key in seen:
        return []
    seen.add(key)
    found: list[BreakingChange] = []
    if old.types != new.types:
        found.append(BreakingChange(path, f"type changed from {_types(old.types)} to {_types(new.types)}"))
    if old.enum != new.enum:
        if old.enum is None:
            found.append(BreakingChange(path, "now limited to enum values: old events may not validate"))
        elif new.enum is None:
            found.append(
                BreakingChange(path, "no longer limited to enum values: old consumers cannot read all")
            )
        else:
            if added := sorted(new.enum - old.enum):
                found.append(
                    BreakingChange(
                        path, f"enum values added {', '.join(added)}: old consumers cannot read them"
                    )
                )
            if removed := sorted(old.enum - new.enum):
                found.append(
                    BreakingChange(
                        path, f"enum values removed {', '.join(removed)}: old events no longer validate"
                    )
                )
    if old.const != new.const:
        found.append(BreakingChange(path, f"const changed from {old.const} to {new.const}"))
    if old.format != new.format:
        found.append(BreakingChange(path, f"format changed from {old.format} to {new.format}"))
    if old.properties is not None and new.properties is not None:
        found += _compare_properties(old, new, path, seen)
    if old.items is not None and new.items is not None:
        found += _compare(_shape(*old.items), _shape(*new.items), f"{path}[]", seen)
    return found


def _compare_properties(
    old: _Shape, new: _Shape, path: str, seen: set[tuple[tuple[str, ...], tuple[str, ...], str]]
) -> list[BreakingChange]:
    assert old.properties is not None and new.properties is not None
    found: list[BreakingChange] = []
    for name in sorted(old.properties.keys() | new.properties.keys()):
        where = f"{path}.{name}" if path else name
        was_required, is_required = name in old.required, name in new.required
        if name not in new.properties:
            if was_required:
                found.append(BreakingChange(where, "required field removed"))
            continue
        if name not in old.properties:
            if is_required:
                found.append(
                    BreakingChange(where, "new required field without a default: old events lack it")
                )
            continue
        if was_required and not is_required:
            found.append(BreakingChange(where, "required field made optional"))
        if is_required and not was_required:
            found.append(BreakingChange(where, "optional field made required: old events may lack it"))
        found += _compare(_shape(*old.properties[name]), _shape(*new.properties[name]), where, seen)
    return found


def breaking_changes(committed: dict[str, Any], current: dict[str, Any]) -> list[BreakingChange]:
    """What in ``current`` breaks a consumer written against ``committed``, or old events read by a
    consumer of ``current``. Empty when the change is compatible."""
    return _compare(_shape(committed, committed), _shape(current, current), "", set())
