"""HTTP requests through the network policy proxy in the PDF: a Network line under the execution for each
(method, destination, path, status, bytes, the credential's name; a refusal in red with its reason), the
count and the refusals in the summary, and never a secret (the events carry none)."""

from __future__ import annotations

from datetime import timedelta

from tests.report.conftest import append, pdf_text
from tests.report.test_render import T0, run_events, session
from workbench.events import Event
from workbench.report import render_report


def request(at, **payload):
    return Event("net.request", "sess-http", "user:alice", {"execution_id": "exhttp", **payload},
                 user="user:alice", time=at)


def test_http_requests_are_counted_per_execution_and_refusals_listed(project, tmp_path):
    at = T0 + timedelta(seconds=1)
    body = run_events("sess-http", "exhttp", "import urllib.request", "ok\n", 0, at)
    reqs = [request(at + timedelta(seconds=0.1), destination="api.example.com", method="GET", path="/v2/items",
                    status=200, bytes_up=120, bytes_down=2048, duration=0.05, rule="https://api.example.com/v2/",
                    credential="api-token"),
            request(at + timedelta(seconds=0.2), destination="api.example.com", method="POST", path="/v2/items",
                    status=403, bytes_up=0, bytes_down=0, duration=0.001,
                    refused="POST is not allowed for https://api.example.com/v2/ (allowed: GET,HEAD)"),
            request(at + timedelta(seconds=0.3), destination="evil.example:8080", method="GET", path="/",
                    status=403, refused="evil.example:8080 is not in the project's network policy"),
            Event("secret.leak", "sess-http", "user:alice", {"secret": "api-token", "execution_id": "exhttp",
                                                            "stream": "stdout", "count": 2}, user="user:alice",
                  time=at + timedelta(seconds=0.4))]
    append(project, session("sess-http", T0, [*body[:-1], *reqs, body[-1]]))
    out = tmp_path / "report.pdf"
    render_report(project, out)
    text = " ".join(pdf_text(out).split())
    assert "HTTP requests 3 through the network policy proxy; refused: 2" in text
    assert "network GET api.example.com/v2/items · 200" in text and "credential api-token" in text
    assert "network POST api.example.com/v2/items refused: POST is not allowed" in text
    assert "HTTP requests refused" in text and "evil.example:8080 is not in the project's network policy" in text
    assert "leak secret api-token found in its stdout (2x) and redacted from what is kept" in text
    assert "Secret leaks 1" in text
    assert "net.request x" not in text and "secret.leak x" not in text  # counted as a known kind, not under "other entries"
