"""Synthetic audit logs: realistic sessions appended through the real audit API, no engine needed.

Why it lives in the package: the tests, the benchmark (`bench/report.py`) and anyone trying the report
on a fresh machine need a log with many executions, and the only honest way to make one is to publish
the same events the sandbox and agent publish (built from the same payload classes, `workbench.events`),
through `AuditLog.append`, so hashes, checkpoints and verification are the real ones.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from workbench import __version__, events
from workbench.events import Event
from workbench.project import Project

SNIPPETS = [
    ("python", "import statistics\nvalues = [3, 1, 4, 1, 5, 9, 2, 6]\nprint('mean', statistics.mean(values))\n"),
    ("python", "import pandas as pd\ndf = pd.read_csv('data/visits.csv')\nprint(df.describe())\n"),
    ("r", "x <- c(1, 2, 3, 4)\nsummary(x)\n"),
    ("shell", "ls -la /workspace && wc -l data/*.csv\n"),
    ("sql", "SELECT region, COUNT(*) FROM visits GROUP BY region ORDER BY 2 DESC;\n"),
    ("python", "print('Grüße, Здравствуйте, Γειά σου, 你好, مرحبا')\nraise SystemExit(3)\n"),
]


MODEL = "qwen2.5-coder-7b-q4"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def session_events(index: int, executions: int, start: datetime, rng: random.Random,
                   user: str = "user:analyst") -> Iterator[Event]:
    """The events of one session with `executions` executions, timestamps from `start`."""
    sid = f"syn{index:05d}"
    heartbeat = index % 5 == 4
    actor = f"heartbeat:nightly-{index % 3}" if heartbeat else f"agent:workbench/{MODEL}"
    moment = start

    def ev(payload: events.Payload, who: str | None = None) -> Event:
        nonlocal moment
        moment += timedelta(milliseconds=rng.randint(5, 400))
        return Event(payload.KIND, sid, who or actor, payload.encode(), user=user, time=moment)

    yield ev(events.SessionStarted(trigger=actor if heartbeat else user, project="synthetic", project_id="0" * 32,
                                   workbench_version=__version__,
                                   schedule=f"nightly-{index % 3}" if heartbeat else None,
                                   cron="0 2 * * *" if heartbeat else None))
    task = f"Summarise the visits data, part {index}"
    yield ev(events.TaskStarted(task=task, model=MODEL, budgets={"max_steps": executions + 1},
                                policy={"executions": "auto", "installs": "ask"}))
    for n in range(executions):
        language, code = SNIPPETS[(index + n) % len(SNIPPETS)]
        if n % 17 == 3:
            code = "".join(f"row_{i} = compute({i}, factor={i * 3})  # step {i} of a long generated script\n"
                           for i in range(120))
        exec_id = uuid.UUID(int=rng.getrandbits(128)).hex[:16]
        action = {"thought": "run the next step", "action": "run_code", "language": language, "code": code}
        yield ev(events.LlmAction(step=n + 1, thought="run the next step", action=action, raw=json.dumps(action),
                                  prompt_tokens=rng.randint(300, 3000), evaluated_tokens=rng.randint(20, 300),
                                  completion_tokens=rng.randint(20, 200), seconds=round(rng.uniform(0.5, 4), 4),
                                  finish_reason="stop"))
        yield ev(events.ExecStarted(execution_id=exec_id, language=language, code=code, session=None,
                                    limits={"memory": "2g", "cpus": 2.0, "pids": 256, "timeout": 120.0}))
        fails = "SystemExit(3)" in code or n % 11 == 7
        out = "".join(f"line {i}: value={i * i}\n" for i in range(1 + n % 7))
        if "Grüße" in code:
            out = "Grüße, Здравствуйте, Γειά σου, 你好, مرحبا\n\x1b[31mred\x1b[0m \ufffd\n"
        yield ev(events.ExecOutput(execution_id=exec_id, stream="stdout", text=out))
        err = "Traceback (most recent call last):\n  File \"<cell>\", line 2\nValueError: bad input\n" if fails else ""
        if err:
            yield ev(events.ExecOutput(execution_id=exec_id, stream="stderr", text=err))
        files = []
        if n % 4 == 1:
            body = f"result {index}/{n}"
            files.append({"path": f"outputs/result_{index}_{n}.csv", "change": "created", "sha256": _sha(body),
                          "size": len(body)})
        yield ev(events.ExecFinished(
            execution_id=exec_id, language=language, session=None,
            exit_code=(3 if "SystemExit(3)" in code else 1) if fails else 0,
            duration=round(rng.uniform(0.05, 3.0), 6), timed_out=False, killed_by=None,
            limits_enforced=True, state_lost=False, notes=(),
            stdout={"total_bytes": len(out.encode()), "sha256": _sha(out), "truncated": False,
                    "kept_bytes": len(out.encode())},
            stderr={"total_bytes": len(err.encode()), "sha256": _sha(err), "truncated": False,
                    "kept_bytes": len(err.encode())},
            files=tuple(files), artifacts=()))
        if n % 23 == 5:
            yield ev(events.PackageInstalled(name="polars", version="1.9.0", manager="pip"))
        if n % 29 == 13:
            yield ev(events.Error(where="llm", message="the model's answer was not valid JSON; asked again"))
    yield ev(events.TaskFinished(success=True, reason="finished", answer="wrote outputs/", steps=executions,
                                 tokens=executions * 900, seconds=round(executions * 2.5, 3)))
    yield ev(events.SessionFinished(outcome="finished"))


def fill(project: Project, executions: int, per_session: int = 40, seed: int = 7,
         start: datetime | None = None) -> int:
    """Append synthetic sessions to `project`'s audit log until it holds `executions` executions.

    Returns the number of entries appended.
    """
    from workbench.audit import AuditLog

    rng = random.Random(seed)
    moment = start or datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    appended = 0
    log = AuditLog.open(project)
    try:
        index = 0
        left = executions
        while left > 0:
            count = min(per_session, left)
            events = list(session_events(index, count, moment, rng))
            log.extend(events)
            appended += len(events)
            moment = events[-1].time + timedelta(minutes=7)
            left -= count
            index += 1
        log.checkpoint()
    finally:
        log.close()
    return appended
