from __future__ import annotations

import json
import logging

from shoal.kit import context
from shoal.kit.logs import JsonFormatter


def _format(record: logging.LogRecord) -> dict[str, object]:
    return dict(json.loads(JsonFormatter("ingest").format(record)))


def test_json_line_with_request_context_and_extras() -> None:
    rid, meth = context.request_id.set("req-1"), context.method.set("/shoal.v1.IngestService/UploadFrames")
    try:
        record = logging.LogRecord("shoal.test", logging.WARNING, __file__, 1, "batch %d of %s", (3, "u1"), None)
        record.upload = "projects/p/datasets/d/uploads/u1"
        entry = _format(record)
    finally:
        context.request_id.reset(rid)
        context.method.reset(meth)
    assert entry["message"] == "batch 3 of u1"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "shoal.test"
    assert entry["service"] == "ingest"
    assert entry["request_id"] == "req-1"
    assert entry["method"] == "/shoal.v1.IngestService/UploadFrames"
    assert entry["upload"] == "projects/p/datasets/d/uploads/u1"
    assert str(entry["timestamp"]).endswith("Z")


def test_exception_is_included() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = _format(record)
    assert "ValueError: bad" in str(entry["exception"])
    assert "request_id" not in entry
