"""HTTP requests through the network policy proxy in the Steps pane: one Network line per execution that
counts the allowed requests (and shows the last few), a highlighted line per refused one with its reason;
what the sandbox named is shown inert."""

from __future__ import annotations

from workbench.events import Event
from workbench.tui.widgets.steps_panel import StepsPanel

from .conftest import SIZE, aio, settle


def net(sid, **payload):
    return Event("net.request", sid, "user:tester", payload)


@aio
async def test_http_requests_are_one_network_line_per_execution_and_refusals_highlighted(make):
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        sid = app.screen.session.session_id
        steps = app.screen.query_one(StepsPanel)
        steps.clear_steps()
        for n in range(30):
            steps.add_event(net(sid, destination="127.0.0.1:8099", method="GET", path=f"/ok/{n}", status=200,
                                bytes_up=100, bytes_down=50, credential="api", execution_id="ex1"))
        steps.add_event(net(sid, destination="evil\x1b[31m.example", method="POST", path="/", status=403,
                            refused="evil.example is not in the project's network policy", execution_id="ex1"))
        steps.add_event(Event("secret.leak", sid, "user:tester", {"secret": "api", "stream": "stdout", "count": 1,
                                                                 "execution_id": "ex1"}))
        await pilot.pause(0.1)
        shown = [(card.title, card.body, card.has_class("-failed")) for card in steps.query("StepCard")]
    assert len(shown) == 3, shown  # thirty requests, one line
    title, body, failed = shown[0]
    assert title == "Network · 30 HTTP requests · 3000 B up, 1500 B down" and not failed
    assert "GET 127.0.0.1:8099/ok/29 · 200 · credential api" in body and "/ok/20 " not in body
    assert shown[1][0].startswith("Network · POST evil") and "\x1b" not in shown[1][0] and shown[1][2]
    assert "not in the project's network policy" in shown[1][1]
    assert shown[2] == ("Secret leak · api found in stdout and redacted", "", True)
