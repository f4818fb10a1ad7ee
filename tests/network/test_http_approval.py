"""With `[agent] approval = "ask"` the first request to each destination in a session asks (once, even for
requests at the same moment), the answer holds for the session, a no is a 403 that never reaches the origin,
an asker that breaks is a no; `auto` (no gate) asks nothing. The agent loop installs the gate on its sandbox's
proxy only when executions are asked about."""

from __future__ import annotations

import socket
import threading
from types import SimpleNamespace

from tests.network.http_server import Origin
from workbench.network.approval import ACTION, DestinationGate, gate_session
from workbench.network.httpproxy import PolicyProxy
from workbench.network.rules import http_rule


def ask(proxy, port, path):
    ours, theirs = socket.socketpair()
    proxy.handle(theirs)
    ours.sendall(f"GET http://127.0.0.1:{port}{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    ours.settimeout(10)
    data = b""
    while chunk := ours.recv(65536):
        data += chunk
    return data.split(b"\r\n", 1)[0]


def test_the_first_request_to_a_destination_asks_once_and_the_answer_holds():
    origin = Origin()
    try:
        asked = []
        answers = {f"127.0.0.1:{origin.port}": True}

        def approve(question):
            asked.append(question)
            threading.Event().wait(0.2)  # a person taking a moment: concurrent requests must not ask again
            return answers.get(question["destination"], False)

        rules = [http_rule(f"http://127.0.0.1:{origin.port}/ok/"), http_rule(f"http://127.0.0.1:{origin.port + 1}/")]
        records = []
        proxy = PolicyProxy(rules, lambda name: "", records.append)
        proxy.gate = DestinationGate(approve)
        threads = [threading.Thread(target=ask, args=(proxy, origin.port, f"/ok/{n}")) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert ask(proxy, origin.port, "/ok/again").startswith(b"HTTP/1.0 200")
        assert len(asked) == 1 and asked[0]["action"] == ACTION and asked[0]["rule"].startswith("http://127.0.0.1")
        assert sorted(origin.paths()) == ["/ok/0", "/ok/1", "/ok/2", "/ok/3", "/ok/again"]
        # another destination, refused: a 403 that never arrives, asked once, recorded with the reason
        assert ask(proxy, origin.port + 1, "/x").startswith(b"HTTP/1.1 403")
        assert ask(proxy, origin.port + 1, "/y").startswith(b"HTTP/1.1 403")
        proxy.drain()
        assert len(asked) == 2
        refused = [r for r in records if r.refused]
        assert len(refused) == 2 and "not approved in this session" in refused[0].refused
    finally:
        origin.close()


def test_an_asker_that_breaks_is_a_no():
    def broken(question):
        raise RuntimeError("the TUI went away")

    gate = DestinationGate(broken)
    assert "not approved" in gate("api.example.com", http_rule("https://api.example.com/"))


def test_gate_session_sets_the_gate_only_where_there_is_a_proxy():
    proxy = SimpleNamespace(gate=None)
    gate_session(SimpleNamespace(http=SimpleNamespace(proxy=proxy)), lambda q: True)
    assert isinstance(proxy.gate, DestinationGate)
    gate_session(SimpleNamespace(http=None), lambda q: True)  # no policy: nothing to gate, no error
    none = SimpleNamespace(http=SimpleNamespace(proxy=SimpleNamespace(gate=None)))
    gate_session(none, None)
    assert none.http.proxy.gate("a:1", http_rule("http://a:1/")).startswith("requests to a:1 were not approved")


def test_the_agent_loop_gates_its_sandbox_only_when_it_asks():
    from workbench.agent.budgets import Policy
    from workbench.agent.loop import AgentLoop

    for executions, gated in (("ask", True), ("auto", False)):
        box = SimpleNamespace(http=SimpleNamespace(proxy=SimpleNamespace(gate=None)), execute=None)
        loop = AgentLoop(SimpleNamespace(), lambda box=box: box, emit=lambda *a, **k: None,
                         policy=Policy(executions=executions), approve=lambda q: True)
        loop.sandbox()
        assert (box.http.proxy.gate is not None) is gated


def test_with_no_terminal_the_cli_answers_no(capsys):
    from workbench.cli.agent_cmd import prompt_approval

    gate = DestinationGate(prompt_approval)  # what `workbench agent run` asks with; the test has no terminal
    assert "not approved" in gate("api.example.com", http_rule("https://api.example.com/v2/"))
    assert "no terminal to ask: not approved" in capsys.readouterr().err
