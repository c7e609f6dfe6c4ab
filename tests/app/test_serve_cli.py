"""`embedops serve`'s own output: a start-up message whose lines are whole in a log file, and an
access log in Common Log Format's order that can be turned off."""

import logging.config
import re

import uvicorn
from conftest import running_app

from embedops.cli.serve import uvicorn_log_config


def test_startup_lines_are_whole_and_the_access_log_can_be_turned_off(cli, monkeypatch, tmp_path):
    ran = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.append(kw))
    long_store = tmp_path / ("a-store-path-long-enough-to-wrap-at-eighty-columns-" * 2)
    from helpers import StoreCli

    started = StoreCli(str(long_store))("serve", "--port", "8123")
    lines = started.stderr.splitlines()
    assert lines[0].startswith("serving alias 'production' of ") and lines[0].endswith("on http://127.0.0.1:8123")
    assert len(lines) == 3 and lines[2] == "API docs: http://127.0.0.1:8123/docs"  # not folded at 80 columns
    assert ran[-1]["access_log"] is True and ran[-1]["log_config"]["loggers"]["uvicorn.access"]["level"] == "INFO"
    StoreCli(str(long_store))("serve", "--no-access-log")
    assert ran[-1]["access_log"] is False


def test_the_access_log_line_has_client_time_request_and_status(reg, capsys):
    from embedops.app.server import create_app

    logging.config.dictConfig(uvicorn_log_config(True))
    with running_app(create_app(reg), log_config=None, log_level=None, access_log=True) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/nowhere").status_code == 404
    log = capsys.readouterr().err
    stamp = r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]"
    for path, status in (("/healthz", 200), ("/nowhere", 404)):
        assert re.search(rf'127\.0\.0\.1:\d+ - - {stamp} "GET {path} HTTP/1\.1" {status}', log), log
