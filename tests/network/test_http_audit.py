"""End to end from the command line with a real container: `workbench exec` reaches an allowed loopback
API through the proxy with the injected credential, and `workbench audit export` holds one net.request per
request (the refused one with its reason) and a secret.leak for an echoed secret, and never the value."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.network.http_server import Origin

pytestmark = pytest.mark.engine

VALUE = "e2e-" + "s3cr3t-5d01"


def test_requests_and_a_leak_are_in_the_audit_export_without_the_secret(workbench_cmd, engine_ready, tmp_path):
    origin = Origin()
    env = {**os.environ, "WORKBENCH_DATA_DIR": str(tmp_path / "data"), "WORKBENCH_CONFIG_DIR": str(tmp_path / "c"),
           "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}

    def wb(*args, stdin=""):
        return subprocess.run([*workbench_cmd, *args], input=stdin, capture_output=True, text=True, timeout=300,
                              env=env)

    try:
        project = str(tmp_path / "proj")
        assert wb("init", project).returncode == 0
        assert wb("secret", "set", "e2e", stdin=VALUE).returncode == 0
        assert wb("network", "allow", "-p", project, f"http://127.0.0.1:{origin.port}/ok/", "--credential", "e2e",
                  "--inject", "X-Api-Key: {secret}").returncode == 0
        code = ("import urllib.request, urllib.error\n"
                f"print(urllib.request.urlopen('http://127.0.0.1:{origin.port}/ok/a?token=q').read().decode())\n"
                "try:\n"
                f"    urllib.request.urlopen('http://127.0.0.1:{origin.port}/admin')\n"
                "except urllib.error.HTTPError as e:\n"
                "    print(e.code)\n"
                f"print({VALUE[:4]!r} + {VALUE[4:]!r})\n")
        result = wb("exec", "-p", project, "--lang", "python", "-c", code)
        assert result.returncode == 0, result.stderr
        assert "origin-ok GET /ok/a?token=q" in result.stdout and "403" in result.stdout
        assert origin.paths() == ["/ok/a?token=q"] and origin.seen[0]["headers"]["X-Api-Key"] == VALUE
        out = tmp_path / "e.jsonl"
        assert wb("audit", "export", "-p", project, "--format", "jsonl", "--out", str(out)).returncode == 0
        text = out.read_text()
        assert VALUE not in text
        entries = [json.loads(line) for line in text.splitlines() if line.strip()]
        payloads = {}
        for entry in entries:
            event = entry.get("event", entry)
            payloads.setdefault(event.get("kind"), []).append(event.get("payload", {}))
        requests = payloads["net.request"]
        assert [(r["path"], r["status"]) for r in requests] == [("/ok/a", 200), ("/admin", 403)]
        assert requests[0]["credential"] == "e2e" and "token" not in json.dumps(requests)
        assert requests[1]["refused"] and not requests[1]["credential"]
        assert [leak["secret"] for leak in payloads["secret.leak"]] == ["e2e"]
    finally:
        origin.close()
