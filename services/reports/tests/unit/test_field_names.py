"""Facets and sample keys become MongoDB field names: what a loss reason may hold must survive."""

from __future__ import annotations

import pytest

from kariz_reports.adapters.mongo import field_name, from_field_name


@pytest.mark.parametrize(
    "text", ["price too high", "v2.0 missing", "$budget", "100% gone", "", "%", "a.%2E.b"]
)
def test_a_name_goes_in_and_comes_back_unchanged(text: str) -> None:
    name = field_name(text)
    assert "." not in name and "$" not in name and name
    assert from_field_name(name) == text
