"""The workstation on the real sandbox (marked `engine`): a scripted model, real containers."""

from __future__ import annotations

import json

import pytest

from workbench.config import Settings
from workbench.tui.services import Services
from workbench.tui.widgets.output_panel import OutputPanel
from workbench.tui.widgets.steps_panel import StepCard

from .conftest import SIZE, aio, settle

pytestmark = pytest.mark.engine

SCRIPT = [
    json.dumps({"thought": "Write a table and say so", "action": "run_code", "language": "python",
                "code": "import sys\nprint('rows: 2')\nprint('note', file=sys.stderr)\n"
                        "open('/workspace/made_by_agent.csv', 'w').write('a,b\\n1,2\\n3,4\\n')"}),
    json.dumps({"thought": "done", "action": "finish", "answer": "rows: 2", "success": True}),
]


def real_services(replies):
    from tests.agent.fakes import ScriptedLLM

    return Services(open_llm=lambda settings, on_status: ScriptedLLM(list(replies)))


@aio
async def test_task_on_the_real_sandbox_shows_steps_output_and_file(engine_ready, demo):
    from workbench.tui.app import make_app

    app = make_app(demo, services=real_services(SCRIPT), settings=Settings(), persist_theme=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None, timeout=60)
        await pilot.press(*"make a table", "enter")
        await settle(pilot, lambda: any(c.title.startswith("✔ Done") for c in app.screen.query(StepCard)),
                     timeout=180)
        lines = app.screen.query_one(OutputPanel).lines
        assert "rows: 2" in lines and "ERR│ note" in lines
        tree = app.screen.query_one("#files-tree")
        await settle(pilot, lambda: "made_by_agent.csv" in {str(n.label) for n in tree.root.children})
        await app.action_quit()


@aio
async def test_stop_a_real_execution(engine_ready, demo):
    from workbench.tui.app import make_app

    app = make_app(demo, services=real_services([]), settings=Settings(), persist_theme=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None, timeout=60)
        app.screen.execute("python", "import time\nprint('started', flush=True)\ntime.sleep(300)\n")
        output = app.screen.query_one(OutputPanel)
        await settle(pilot, lambda: "started" in output.lines, timeout=120)
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: any("killed (user)" in line for line in output.lines), timeout=30)
        await app.action_quit()


@aio
async def test_a_real_scheduled_run_streams_live_into_the_panes(engine_ready, demo):
    """The in-process scheduler runs a due script schedule on the real sandbox; its output shows while it
    runs (the first line before the script has finished), under its actor."""
    from datetime import UTC, datetime, timedelta

    from workbench.heartbeat.schedule import Schedule
    from workbench.heartbeat.store import ScheduleStore
    from workbench.tui.app import make_app
    from workbench.tui.widgets.steps_panel import StepsPanel

    store = ScheduleStore(demo.state_db)
    store.add(Schedule(name="live", cron="* * * * *", timezone="UTC", kind="script", language="python",
                       code="import time\nprint('first line', flush=True)\ntime.sleep(4)\nprint('last line')\n"),
              datetime.now(UTC) - timedelta(minutes=3))
    store.close()
    app = make_app(demo, services=real_services([]), settings=Settings(), persist_theme=False)
    async with app.run_test(size=SIZE) as pilot:
        output = app.screen.query_one(OutputPanel)
        steps = app.screen.query_one(StepsPanel)
        await settle(pilot, lambda: "first line" in output.lines, timeout=120)
        assert "last line" not in output.lines  # live: the run is still sleeping
        assert steps.border_title == "Steps · scheduled run live · live"
        assert any("heartbeat:live" in line for line in output.lines)
        await settle(pilot, lambda: "last line" in output.lines, timeout=60)
        await settle(pilot, lambda: steps.border_title == "Steps · scheduled run live · succeeded", timeout=30)
        await app.action_quit()


@aio
async def test_a_run_by_the_heartbeat_service_is_followed_from_the_log(engine_ready, demo, workbench_cmd):
    """`workbench heartbeat run` (as the systemd unit runs it) holds the lock; the TUI follows its run."""
    import subprocess
    import time as clock
    from datetime import UTC, datetime, timedelta

    from workbench.heartbeat.schedule import Schedule
    from workbench.heartbeat.scheduler import LockHeld, SchedulerLock
    from workbench.heartbeat.store import ScheduleStore
    from workbench.tui.app import make_app

    store = ScheduleStore(demo.state_db)
    store.add(Schedule(name="svc", cron="* * * * *", timezone="UTC", kind="script", language="python",
                       code="import time\ntime.sleep(8)\nprint('from the service', flush=True)\n"),
              datetime.now(UTC) - timedelta(minutes=3))
    store.close()
    service = subprocess.Popen([*workbench_cmd, "heartbeat", "run", "-p", str(demo.root)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = clock.monotonic() + 30
        while True:  # wait until the service holds the lock
            probe = SchedulerLock(demo)
            try:
                probe.acquire()
                probe.release()
            except LockHeld:
                break
            if service.poll() is not None:
                raise AssertionError(f"the heartbeat service exited ({service.returncode}): "
                                     f"{service.stderr.read().decode(errors='replace')[-2000:]}")
            assert clock.monotonic() < deadline, "the heartbeat service did not take the lock"
            clock.sleep(0.2)
        app = make_app(demo, services=real_services([]), settings=Settings(), persist_theme=False)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, lambda: app.screen.scheduler_state == "elsewhere", timeout=30)
            output = app.screen.query_one(OutputPanel)
            await settle(pilot, lambda: "from the service" in output.lines, timeout=90)
            await app.action_quit()
    finally:
        service.terminate()
        service.wait(30)
