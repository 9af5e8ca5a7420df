"""LOG_FORMAT=json gives one JSON object per line; text stays readable."""

from __future__ import annotations

import json
import logging

import pytest

from sentrycoin.logs import setup_logging

pytestmark = pytest.mark.usefixtures("restore_logging")


def test_json_lines(capsys) -> None:
    setup_logging("INFO", "json")
    log = logging.getLogger("sentrycoin.test")
    log.info("book in sync: %s", "BTC-USDT")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("feed failed")
    log.debug("hidden at INFO")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO" and first["logger"] == "sentrycoin.test"
    assert first["message"] == "book in sync: BTC-USDT" and first["ts"].endswith("Z")
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exc"]


def test_text_format(capsys) -> None:
    setup_logging("WARNING", "text")
    logging.getLogger("sentrycoin.test").warning("stale feed")
    logging.getLogger("sentrycoin.test").info("not shown")
    err = capsys.readouterr().err
    assert "WARNING" in err and "stale feed" in err and "not shown" not in err
    assert not err.lstrip().startswith("{")
