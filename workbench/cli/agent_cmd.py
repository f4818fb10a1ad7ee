"""`workbench run` (the agent, headless); `workbench model` is in `model_cmd`.

Thin: parse, open a `WorkSession` (so the audit log records every event), run `AgentLoop`, and print
what happens from the session's events as it happens: the model's thought, the code, the live output,
the result. Exit 0 when the task finished with a verified success, 1 when the agent gave up or ran out
of budget, 2 on a usage or setup error (bad flag, no model, no engine).

Everything printed here is the model's or the sandbox's (thoughts, code, output, file names in the
"files changed" line, answers): it goes out with every control character shown as a visible escape, so a
file named with an OSC sequence retitles no window. Unlike `workbench exec`, the agent's code output is
not the user's own stream, so it is made inert too.
"""

from __future__ import annotations

import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import click

from workbench import events
from workbench.cli.common import one_line, open_project, project_option, say
from workbench.errors import UsageError, WorkbenchError
from workbench.inert import visible

RUN_EPILOG = """\b
Exit status:
  0  the task finished and the result was verified against an execution
  1  the agent gave up, ran out of steps/tokens/time, got stuck, or was stopped
  2  a usage or setup error (bad flag, no model, no container engine or image)"""


class SetupError(WorkbenchError):
    """Anything that stops `run` before the agent starts: always exit 2, as the contract says."""

    exit_code = 2


def _setup(error: WorkbenchError) -> SetupError:
    return SetupError(error.message, error.hint)


# --- printing steps from events ---------------------------------------------------------------------------

def _indent(text: str, prefix: str = "    ") -> str:
    return textwrap.indent(text.rstrip("\n"), prefix, lambda line: True)


class StepPrinter:
    """Turns the loop's events (and live output chunks) into lines on the terminal."""

    def __init__(self, echo=click.echo):
        self.echo = echo
        self._lock = threading.Lock()
        self._output_open = False
        self._finished: events.ExecFinished | None = None  # the last execution's record (files, artifacts)

    def say(self, text: str, **style: Any) -> None:
        """One of Workbench's lines: made visible first, then styled (see `workbench.cli.common.say`)."""
        line = visible(text)
        self.echo(click.style(line, **style) if style else line)

    def on_event(self, event) -> None:
        payload = event.decoded()  # through the event contract (workbench.events)
        with self._lock:
            match payload:
                case events.LlmAction():
                    self._end_output()
                    action = payload.action if isinstance(payload.action, dict) else {"action": payload.action_name()}
                    self.say(f"\nstep {payload.step} · {one_line(self._title(action))}", bold=True)
                    if payload.thought:
                        self.say(_indent(f"thought: {payload.thought}", "  "))
                    if action["action"] == "run_code":
                        self.say("  code:")
                        self.say(_indent(action["code"]))
                    elif action["action"] == "write_file":
                        self.say(f"  content: {len(action['content'])} characters")
                case events.LlmMalformed():
                    self._end_output()
                    self.say(f"\nstep {payload.step} · malformed reply: {payload.error}", fg="yellow")
                case events.AgentApproval() if not payload.approved:
                    self.say("  not approved", fg="yellow")
                case events.AgentObservation():
                    self._end_output()
                    self._observation(payload)
                    self._finished = None
                case events.ExecFinished():
                    self._finished = payload

    @staticmethod
    def _title(action: dict[str, Any]) -> str:
        name = action["action"]
        if name == "run_code":
            return f"run_code ({action['language']})"
        if name == "install":
            return f"install ({action['manager']}) {' '.join(action['packages'])}"
        if name in ("read_file", "write_file"):
            return f"{name} {action['path']}"
        if name == "finish":
            return f"finish ({'success' if action['success'] else 'gave up'})"
        return name

    def _observation(self, payload: events.AgentObservation) -> None:
        text = payload.text
        if payload.action == "run_code":
            # The output was printed live; show the status line, files, notes and hints only. The files and
            # artifacts come from the execution's record, one name per item made inert, so a file named
            # "x\nhint: ..." or with an escape cannot forge or hide a line here.
            lines = text.splitlines()
            keep = [lines[0]]
            if self._finished is not None:
                keep += files_lines(self._finished)
            else:
                keep += [line for line in lines[1:] if line.startswith(("files changed:", "artifacts:"))]
            keep += [line for line in lines[1:] if line.startswith(("note:", "hint:", "warning:"))]
            text = "\n".join(keep)
        elif len(text) > 1200:
            text = text[:1200] + "\n[...]"
        colour = {True: "green", False: "red"}.get(payload.ok)  # type: ignore[call-overload]
        self.say(_indent(f"result: {text}", "  "), fg=colour)

    def on_chunk(self, chunk) -> None:
        with self._lock:
            if not self._output_open:
                self.echo("  output:")
                self._output_open = True
            stream = sys.stdout if chunk.stream == "stdout" else sys.stderr
            text = chunk.data.decode("utf-8", errors="replace").replace("\r\n", "\n")
            stream.write(visible(text))  # the agent's code, not the user's own stream: never raw
            stream.flush()

    def _end_output(self) -> None:
        if self._output_open:
            sys.stdout.flush()
            self._output_open = False


def files_lines(finished: events.ExecFinished, limit: int = 20) -> list[str]:
    """The "files changed:" and "artifacts:" lines of an execution, from its exec.finished payload."""
    lines = []
    files = [f for f in finished.files if isinstance(f, dict)]
    if files:
        shown = ", ".join(f"{one_line(f.get('change', 'changed'))} {one_line(f.get('path', '?'))}"
                          + (f" ({f['size']:,} bytes)" if isinstance(f.get("size"), int) else "")
                          + (f" (a {one_line(f['kind'])})" if f.get("kind") else "")
                          for f in files[:limit])
        more = f" and {len(files) - limit} more" if len(files) > limit else ""
        lines.append(f"files changed: {shown}{more}")
    artifacts = [a for a in finished.artifacts if isinstance(a, dict)]
    if artifacts:
        lines.append("artifacts: " + ", ".join(f"{one_line(a.get('path', '?'))} ({one_line(a.get('mime', '?'))})"
                                               for a in artifacts[:limit]))
    return lines


# --- approval at the prompt -----------------------------------------------------------------------------

def install_reach(settings: Any, manager: str) -> str:
    """Where an install with `manager` may reach under `settings`, or why that is unknown."""
    from workbench.sandbox.install import reachable

    try:
        return reachable(settings, manager)
    except WorkbenchError as exc:
        return exc.one_line()


def prompt_approval(action, settings: Any = None) -> bool:
    """Ask at the terminal; without one (a pipe, CI) the answer is no, and we say so."""
    from workbench.agent import actions

    if not sys.stdin.isatty():
        say("  approval needed but there is no terminal to ask: not approved (use --approve auto)", err=True)
        return False
    summary = dict(action) if isinstance(action, dict) else actions.to_payload(action)  # dict: a destination
    summary.pop("thought", None)
    what = summary.pop("action")
    if what == "install" and settings is not None:
        say(f"  this install may reach: {install_reach(settings, str(summary.get('manager', '')))}")
    try:
        return click.confirm(visible(f"  allow {what} {summary}?"), default=False)
    except click.Abort:
        return False


# --- run ------------------------------------------------------------------------------------------------

@click.command(epilog=RUN_EPILOG)
@project_option
@click.argument("task")
@click.option("--model", "model_spec", metavar="M", help="A model name from `workbench model list`, or a .gguf path.")
@click.option("--max-steps", type=click.IntRange(1, 500), help="Step budget (default: [agent] max_steps).")
@click.option("--approve", type=click.Choice(["auto", "ask"]),
              help="auto: run everything in the sandbox; ask: confirm each execution and install "
                   "(default: [agent] approval, with installs asking).")
def run(project_dir: Path, task: str, model_spec: str | None, max_steps: int | None, approve: str | None) -> None:
    """Run the agent on TASK, headless: print each step as it happens."""
    from workbench.agent.llm import open_model
    from workbench.agent.models import resolve
    from workbench.agent.outcome import summarize
    from workbench.agent.runner import policy_from, run_task
    from workbench.session import WorkSession

    if not task.strip():
        raise UsageError("the task is empty", 'say what to do, e.g. workbench run "Summarise data.csv"')
    try:
        project = open_project(project_dir, create=True)
        settings = project.settings()
        path = None
        if model_spec:
            path = resolve(model_spec, settings.model.models_dir, base=Path.cwd()).path
        model = open_model(settings.model, path, on_status=lambda message: say(message, err=True))
    except WorkbenchError as exc:
        raise _setup(exc) from exc
    printer = StepPrinter()
    session = None
    finished = False
    try:
        try:
            session = WorkSession.open(project, settings=settings, trigger="cli:run")
            session.bus.subscribe(printer.on_event, kinds=["llm.*", "agent.*", "exec.finished"])
            session.sandbox  # noqa: B018 - start it now: a missing engine or image is a setup error (exit 2)
        except WorkbenchError as exc:
            raise _setup(exc) from exc
        stop = threading.Event()
        outcome, finished = _run_interruptibly(
            lambda: run_task(session, task, model, approve=lambda action: prompt_approval(action, settings),
                             stop=stop, on_chunk=printer.on_chunk,
                             max_steps=max_steps, policy=policy_from(settings, approve)), stop)
    finally:
        if session is not None:
            session.close()
        if finished or session is None:
            model.close()  # never while the agent's thread may still be inside it (llama.cpp would crash)
    colour = "green" if outcome.success else "yellow"
    say(f"\n{summarize(outcome)}", fg=colour, bold=True)
    if outcome.answer:
        say(f"answer: {outcome.answer}")
    sys.exit(0 if outcome.success else 1)


def _run_interruptibly(work, stop: threading.Event):
    """Run `work()` in a worker thread so Ctrl-C becomes a clean stop (outcome 'stopped') not a traceback.

    Returns (outcome, True once the worker has ended). A second Ctrl-C while the agent stops leaves the
    worker behind (daemon): the caller must then not free the model it may still be using.
    """
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["outcome"] = work()
        except BaseException as exc:  # re-raised in the main thread
            result["error"] = exc

    worker = threading.Thread(target=run, name="workbench-agent", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        say("\nstopping the agent ...", err=True)
        stop.set()
        worker.join()
    if "error" in result:
        raise result["error"]
    return result["outcome"], not worker.is_alive()
