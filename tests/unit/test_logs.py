"""Log lines as a pod's log collector sees them: one JSON event per line, Ferry's and the
libraries' alike, each naming the run it belongs to and, where there is one, its object."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from ferry import logs


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


def test_every_line_is_one_json_event_naming_its_run(
        capsys: pytest.CaptureFixture[str], restored_logging: None) -> None:
    logs.configure("INFO", json=True)
    log = structlog.get_logger("ferry.run")
    with structlog.contextvars.bound_contextvars(workflow="ad-to-ad", run="r1"):
        log.info("object.written", object="CN=Ada Lovelace,OU=Staff,DC=tgt,DC=lab")
        logging.getLogger("kopf.objects").info(
            "Handler succeeded.\nsecond line",
            extra={"k8s_ref": {"kind": "Workflow", "namespace": "team-a", "name": "ad-to-ad"}})
        logging.getLogger("urllib3").debug("below the level: not written")
    log.info("after.the.run")
    lines = capsys.readouterr().err.splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["event"] for e in events] == ["object.written", "Handler succeeded.\nsecond line",
                                            "after.the.run"]
    written, kopf, after = events
    assert (written["workflow"], written["run"], written["level"]) == ("ad-to-ad", "r1", "info")
    assert written["object"] == "CN=Ada Lovelace,OU=Staff,DC=tgt,DC=lab"
    assert (kopf["workflow"], kopf["run"], kopf["logger"]) == ("ad-to-ad", "r1", "kopf.objects")
    assert kopf["object"] == "Workflow team-a/ad-to-ad" and "timestamp" in kopf
    assert "run" not in after
