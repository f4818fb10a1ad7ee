"""Code in a real container behind the HTTP policy proxy: an allowed GET reaches a real loopback origin with
the credential injected; other paths, ports, methods and hosts are 403s that never arrive; the secret is in
no environment, file or command line of the container; every request is a net.request event with no secret
in it; an echoed secret is redacted from what is kept and recorded as secret.leak; warm sessions go through
the same proxy; and a project without rules keeps network none and no socket."""

from __future__ import annotations

import json

import pytest

from tests.network.http_server import Origin
from tests.sandbox.conftest import Recorder, make_settings, run, still_works
from workbench.network.rules import http_rule

pytestmark = pytest.mark.engine

SECRET = "wb-" + "http-s3cr3t-41c9"
CREDENTIAL = "api-token"


@pytest.fixture(scope="module")
def origin():
    found = Origin()
    yield found
    found.close()


@pytest.fixture(scope="module")
def http_recorder():
    return Recorder()


@pytest.fixture(scope="module")
def http_sandbox(engine_ready, origin, tmp_path_factory, http_recorder):
    from workbench.network import http_access
    from workbench.project import Project
    from workbench.sandbox import Sandbox

    project = Project.init(tmp_path_factory.mktemp("http") / "proj")
    rules = [http_rule(f"http://127.0.0.1:{origin.port}/ok/", credential=CREDENTIAL,
                       inject="Authorization: Bearer {secret}"),
             http_rule(f"http://127.0.0.1:{origin.port}/up/", methods="POST")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(http_access, "policy_rules", lambda root: rules)
        patch.setattr(http_access, "vault_secret", {CREDENTIAL: SECRET}.__getitem__)
        box = Sandbox.open(project, bus=http_recorder.bus, settings=make_settings(timeout=60),
                           session_id="httptest", actor="user:test")
    yield box
    box.close()


FETCH = """
import json, urllib.request, urllib.error
def fetch(url, method="GET", data=None, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method,
                                                           headers=headers or {}), timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
"""


def python(box, code):
    result, _ = run(box, "python", FETCH + code)
    assert result.exit_code == 0, (result.stdout.text(), result.stderr.text())
    return result


def test_an_allowed_get_reaches_the_origin_with_the_injected_credential(http_sandbox, origin, http_recorder):
    origin.seen.clear()
    result = python(http_sandbox, f"print(json.dumps(fetch('http://127.0.0.1:{origin.port}/ok/items?x=1', "
                                  "headers={'Authorization': 'Basic planted'})))")
    status, body = json.loads(result.stdout.text())
    assert status == 200 and "origin-ok GET /ok/items?x=1" in body
    assert [s["headers"]["Authorization"] for s in origin.seen] == [f"Bearer {SECRET}"]
    [event] = [e.payload for e in http_recorder.of("net.request", result.execution_id)]
    assert (event["method"], event["path"], event["status"], event["credential"]) == ("GET", "/ok/items", 200,
                                                                                       CREDENTIAL)
    assert event["rule"].endswith("/ok/") and event["bytes_down"] > 0 and event["refused"] == ""


@pytest.mark.parametrize("call", [
    "fetch('http://127.0.0.1:{port}/other')",
    "fetch('http://127.0.0.1:{port}/ok/../admin')",
    "fetch('http://127.0.0.1:{other}/ok/x')",
    "fetch('http://127.0.0.1:{port}/ok/x', 'POST', b'data')",
    "fetch('http://example.com/ok/x')",
])
def test_what_no_rule_allows_is_a_403_and_never_arrives(http_sandbox, origin, http_recorder, call):
    origin.seen.clear()
    result = python(http_sandbox, "print(json.dumps(fetch" + call[5:].format(port=origin.port, other=origin.port + 1)
                    + "))")
    status, body = json.loads(result.stdout.text())
    assert status == 403 and body.startswith("workbench network policy: ") and body.count("\n") == 1
    assert origin.seen == []
    [event] = [e.payload for e in http_recorder.of("net.request", result.execution_id)]
    assert event["status"] == 403 and event["refused"]
    still_works(http_sandbox)


def test_a_post_rule_passes_a_post_with_its_body(http_sandbox, origin):
    origin.seen.clear()
    result = python(http_sandbox, f"print(fetch('http://127.0.0.1:{origin.port}/up/f', 'POST', b'payload')[0])")
    assert result.stdout.text().strip() == "200"
    assert [(s["method"], s["body"], "Authorization" in s["headers"]) for s in origin.seen] == [
        ("POST", b"payload", False)]


def test_the_secret_is_nowhere_in_the_container(http_sandbox):
    # every other process's environment and command line, and every file the container can read outside
    # /proc, /sys and /dev (the secret is assembled in the checking process only, never in its argv)
    code = f"""
import os
secret = {SECRET[:5]!r} + {SECRET[5:]!r}
hits = []
for pid in filter(str.isdigit, os.listdir('/proc')):
    if int(pid) == os.getpid():
        continue
    for name in ('environ', 'cmdline'):
        try:
            if secret.encode() in open(f'/proc/{{pid}}/{{name}}', 'rb').read():
                hits.append(f'{{pid}}/{{name}}')
        except OSError:
            pass
for top, dirs, files in os.walk('/'):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ('/proc', '/sys', '/dev')]
    for f in files:
        try:
            with open(os.path.join(top, f), 'rb') as handle:
                if secret.encode() in handle.read(4 << 20):
                    hits.append(os.path.join(top, f))
        except OSError:
            pass
print('hits', hits)
print(sorted(k for k in os.environ if k.lower().endswith('_proxy')), os.environ['http_proxy'])
"""
    result, _ = run(http_sandbox, "python", code)
    lines = result.stdout.text().splitlines()
    assert lines[0] == "hits []", result.stdout.text() + result.stderr.text()
    assert lines[1] == ("['HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy'] "
                        "http://127.0.0.1:3128")


def test_an_echoed_secret_is_redacted_from_the_record_and_is_a_secret_leak(http_sandbox, http_recorder):
    # code that got the secret somehow (an origin echoing it) and prints it: kept redacted, the leak named
    result, _ = run(http_sandbox, "python", f"print('leak:' + {SECRET[:5]!r} + {SECRET[5:]!r})")
    outputs = "".join(e.payload["text"] for e in http_recorder.of("exec.output", result.execution_id))
    assert SECRET not in outputs and f"leak:[secret {CREDENTIAL} redacted]" in outputs
    assert result.stdout.text() == f"leak:[secret {CREDENTIAL} redacted]\n"  # the result the agent sees
    [leak] = [e.payload for e in http_recorder.of("secret.leak", result.execution_id)]
    assert leak["secret"] == CREDENTIAL and leak["stream"] == "stdout" and leak["count"] == 1
    assert all(SECRET not in json.dumps(dict(e.payload), default=str) for e in http_recorder.events)


def test_a_warm_session_goes_through_the_same_proxy(http_sandbox, origin):
    origin.seen.clear()
    result, _ = run(http_sandbox, "python", FETCH + f"print(fetch('http://127.0.0.1:{origin.port}/ok/w')[0], "
                                  f"fetch('http://127.0.0.1:{origin.port}/no')[0])", session="net")
    assert result.stdout.text().split() == ["200", "403"], result.stderr.text()
    assert origin.paths() == ["/ok/w"] and origin.seen[0]["headers"]["Authorization"] == f"Bearer {SECRET}"


def test_a_project_without_rules_keeps_network_none_and_no_socket(sandbox, http_sandbox):
    assert sandbox.http is None
    # `test -e`, not ls's message: under gVisor ls of the missing path says "Invalid argument"
    result, _ = run(sandbox, "shell", "test -e /mnt/workbench-egress && echo present || echo absent; "
                                      "env | grep -ci _proxy")
    assert result.stdout.text().split() == ["absent", "0"]
    plain = sandbox.engine.api.inspect_container(sandbox.container)
    assert plain["HostConfig"]["NetworkMode"] == "none"
    assert not [m for m in plain["Mounts"] if m["Destination"] == "/mnt/workbench-egress"]
    run(http_sandbox, "shell", "true")  # its container exists once something ran (this test may run alone)
    governed = http_sandbox.engine.api.inspect_container(http_sandbox.container)
    assert governed["HostConfig"]["NetworkMode"] == "none"  # the socket is its only way out
    [mount] = [m for m in governed["Mounts"] if m["Destination"] == "/mnt/workbench-egress"]
    assert mount["RW"] is False
