"""A sample of an event built from its schema alone: the values a rule's conditions and templates are
checked against when the rule is saved, so that a misspelt field is refused then, not at send time."""

from __future__ import annotations

import types
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

#: Every time of a sample: fixed, so a template that shows one renders the same at every save.
SAMPLE_TIME = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def _value(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        # An optional field gets a value: a template may show it (``{{ deal_id }}``).
        present = [a for a in get_args(annotation) if a is not type(None)]
        return _value(present[0]) if present else None
    if origin is Literal:
        return get_args(annotation)[0]
    if origin in (list, tuple, set, frozenset):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        return [_value(args[0])] if args else []
    if origin is dict:
        return {}
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return sample_of(annotation)
        if issubclass(annotation, Enum):
            return next(iter(annotation)).value
        if issubclass(annotation, bool):
            return True
        if issubclass(annotation, int):
            return 1
        if issubclass(annotation, float | Decimal):
            return Decimal("1")
        if issubclass(annotation, datetime):
            return SAMPLE_TIME
        if issubclass(annotation, date):  # a day, e.g. a deal's expected close date
            return SAMPLE_TIME.date()
    return "sample"


def sample_of(model: type[BaseModel]) -> dict[str, Any]:
    """Every field of ``model``, nested models included, with a value of its type."""
    return {name: _value(info.annotation) for name, info in model.model_fields.items()}
