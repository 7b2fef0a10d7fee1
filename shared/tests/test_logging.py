import json
import logging

from kariz_shared.runtime.logging import JsonFormatter, correlation_id


def test_a_log_line_is_json_with_the_correlation_id_and_extra_fields() -> None:
    record = logging.LogRecord("kariz.test", logging.INFO, __file__, 1, "handled %s", ("it",), None)
    record.event_id = "e-1"
    token = correlation_id.set("corr-1")
    try:
        line = json.loads(JsonFormatter("leads").format(record))
    finally:
        correlation_id.reset(token)
    assert line["message"] == "handled it"
    assert (line["service"], line["level"], line["correlation_id"], line["event_id"]) == (
        "leads",
        "INFO",
        "corr-1",
        "e-1",
    )


def test_without_work_in_hand_there_is_no_correlation_id() -> None:
    record = logging.LogRecord("kariz.test", logging.WARNING, __file__, 1, "idle", (), None)
    assert "correlation_id" not in json.loads(JsonFormatter("deals").format(record))
