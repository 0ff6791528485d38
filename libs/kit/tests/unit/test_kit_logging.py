"""JSON log lines: fields, extras and redaction of secrets."""

from __future__ import annotations

import io
import json
import logging

import pytest
from pydantic import SecretStr

from vigil_kit.logging import configure_logging


@pytest.fixture
def log_stream():
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("registry", "DEBUG", stream=stream)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_object_with_the_standard_fields(log_stream):
    logging.getLogger("vigil_registry.api").info("device %s registered", "d-1")

    (entry,) = lines(log_stream)
    assert entry["message"] == "device d-1 registered"
    assert (entry["level"], entry["logger"], entry["service"]) == ("INFO", "vigil_registry.api", "registry")
    assert entry["time"].endswith("+00:00")


def test_extra_fields_are_included(log_stream):
    logging.getLogger("t").warning("slow", extra={"device_id": "d-1", "elapsed_s": 1.5, "tags": ["a"]})

    (entry,) = lines(log_stream)
    assert (entry["device_id"], entry["elapsed_s"], entry["tags"]) == ("d-1", 1.5, ["a"])


def test_secret_looking_keys_are_redacted_at_any_depth(log_stream):
    logging.getLogger("t").info(
        "config",
        extra={
            "token": "eyJabc",
            "s3_secret_key": SecretStr("hunter2"),
            "db": {"password": "pw", "host": "h"},
            "authorization": "Bearer xyz",
            "private_key": "-----BEGIN",
        },
    )

    (entry,) = lines(log_stream)
    assert (
        entry["token"]
        == entry["s3_secret_key"]
        == entry["authorization"]
        == entry["private_key"]
        == "[REDACTED]"
    )
    assert entry["db"] == {"password": "[REDACTED]", "host": "h"}
    assert "hunter2" not in log_stream.getvalue()


def test_bearer_tokens_in_free_text_are_masked(log_stream):
    logging.getLogger("t").info("header was Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1MSJ9.c2ln")

    (entry,) = lines(log_stream)
    assert "eyJhbGci" not in entry["message"]
    assert "[REDACTED]" in entry["message"]


def test_prose_about_tokens_is_left_alone(log_stream):
    logging.getLogger("t").info("call refused: missing bearer token")

    (entry,) = lines(log_stream)
    assert entry["message"] == "call refused: missing bearer token"


def test_exceptions_are_logged_with_their_traceback(log_stream):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("t").exception("failed")

    (entry,) = lines(log_stream)
    assert entry["level"] == "ERROR"
    assert "RuntimeError: boom" in entry["exception"]


def test_configuring_twice_keeps_a_single_handler(log_stream):
    configure_logging("registry", "INFO", stream=log_stream)
    logging.getLogger("t").info("once")

    assert len(lines(log_stream)) == 1
