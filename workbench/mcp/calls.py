"""What each MCP tool does, without the protocol: one work session per call, recorded like a heartbeat run.

Every call opens a `WorkSession` with trigger `mcp` and actor `mcp:<client>` (the name the client gave in
its initialize request), does its work through the same core the CLI and the agent use, and ends with an
`mcp.call` event naming the tool, its small arguments and its outcome. So a call is in the audit log as a
session of its own, which an open TUI's Audit pane picks up as the log grows (it polls the log), and a
reviewer's report shows who called what.

Approval follows the project's policy as the agent's tools do: `execute` and `write_file` ask when
`[agent] approval = "ask"`, `install` when `[agent] approve_installs = "ask"` (the default). A call that
asks waits for the person at the project's open TUI (`workbench.approvals`: the TUI's approval dialog,
at most `approval_timeout` seconds, `workbench mcp --approval-timeout`); with no TUI open it is refused at
once with a message that says how to open one or what to change. The answer is recorded as an
`approval.decided` event in the call's session, and a refused call as `mcp.call` outcome refused. Under
`approval = "ask"` an approved execution's code is also asked about each new destination it reaches
through the project's network policy, as in the agent's sessions (`gate_network`). A
restricted (untrusted) project gets its restricted settings from `Project.settings()`, exactly as the CLI
does.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import events
from workbench.agent.file_tools import OutsideWorkspace, WorkspaceFiles
from workbench.confined import Confined, Refused
from workbench.errors import UsageError, WorkbenchError
from workbench.inert import one_line
from workbench.project import Project
from workbench.session import WorkSession

TRIGGER = "mcp"
# MCP tool -> the agent's own tool whose approval setting it follows (workbench.agent.tools)
AGENT_TOOL = {"execute": "run_code", "install": "install", "write_file": "write_file",
              "export_report": "write_file", "read_file": "read_file"}
SETTING = {"executions": "[agent] approval", "installs": "[agent] approve_installs"}
TAIL_LIMIT = 200  # audit entries the tail resource shows at most
RESOURCE_LIMIT = 1024 * 1024  # bytes of a workspace file a resource read returns at most
REPLY_LIMIT = 64 * 1024  # bytes of each stream an execute reply carries at most (the log hashes them all)


class CallRefused(WorkbenchError):
    """The project's policy or the workspace's confinement said no."""

    exit_code = 1


@dataclass
class Reply:
    """A call's result: `ok` False makes it an MCP error result; `data` is its structured content."""

    ok: bool
    text: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Caller:
    client: str = "unknown"
    transport: str = "stdio"

    @property
    def actor(self) -> str:
        return f"mcp:{one_line(self.client)[:80] or 'unknown'}"


class Outcome:
    def __init__(self) -> None:
        self.state = "ok"
        self.message: str | None = None


class Tools:
    """The tools and resources of one project, for any number of callers (one session per call)."""

    def __init__(self, project: Project, approval_timeout: float | None = None):
        from workbench.approvals import DEFAULT_TIMEOUT

        self.project = project
        self.approval_timeout = DEFAULT_TIMEOUT if approval_timeout is None else approval_timeout

    # --- the frame of every call -----------------------------------------------------------------------
    @contextmanager
    def call(self, caller: Caller, tool: str, arguments: dict[str, Any]) -> Iterator[tuple[WorkSession, Outcome]]:
        settings = self.project.settings()  # read per call: a config edit, or a restriction, applies at once
        outcome = Outcome()
        with WorkSession.open(self.project, actor=caller.actor, settings=settings, trigger=TRIGGER,
                              details={"command": f"mcp {tool}"}) as work:
            try:
                yield work, outcome
            except CallRefused as exc:
                outcome.state, outcome.message = "refused", exc.one_line()
                raise
            except WorkbenchError as exc:
                outcome.state, outcome.message = "error", exc.one_line()
                raise
            except Exception as exc:
                outcome.state, outcome.message = "error", one_line(f"{type(exc).__name__}: {exc}")
                raise
            finally:
                work.emit(events.MCP_CALL, events.McpCall(
                    tool=tool, client=one_line(caller.client), transport=caller.transport, outcome=outcome.state,
                    arguments=arguments, message=outcome.message))

    def run(self, caller: Caller, tool: str, arguments: dict[str, Any], body: Any) -> Reply:
        """Run `body(work, outcome) -> Reply` in a call's frame; a refusal or bad input becomes an error reply."""
        try:
            with self.call(caller, tool, arguments) as (work, outcome):
                reply = body(work, outcome)
                if not reply.ok and outcome.state == "ok":
                    outcome.state, outcome.message = "failed", one_line(reply.text)[:500]
                reply.data.setdefault("audit_session", work.session_id)
                return reply
        except WorkbenchError as exc:
            return Reply(False, exc.one_line())

    def check_approval(self, work: WorkSession, caller: Caller, tool: str, **asked: Any) -> None:
        """Go on when the policy lets `tool` run, or when the person at the project's open TUI says yes
        (`workbench.approvals`); raise CallRefused otherwise. An asked approval is on the record either way
        (`approval.decided` in this call's session, `by` the TUI's user)."""
        from workbench import approvals
        from workbench.agent.tools import TOOLS

        asks = TOOLS.get(AGENT_TOOL.get(tool, "run_code")).approval
        policy = {"executions": work.settings.agent.approval, "installs": work.settings.agent.approve_installs}
        if policy.get(asks) != "ask":
            return
        if "packages" in asked:
            asked["packages"] = tuple(asked["packages"])
        decision = self.ask_tui(work, caller, approvals.Request(tool, client=one_line(caller.client)[:80], **asked))
        if decision.approved:
            return
        own = f"workbench {'install' if asks == 'installs' else 'exec'} -p {self.project.root} ..."
        if decision.outcome == "refused":
            raise CallRefused(f"{tool} refused: {decision.reason}", "nothing was run")
        if decision.outcome == "no-tui":
            raise CallRefused(
                f"{tool} refused: this project asks for approval first ({SETTING[asks]} = \"ask\"), and it "
                "cannot be approved: no Workbench TUI is open for this project",
                f"open the TUI (workbench {self.project.root}) and call again to approve it there, run it "
                f"yourself ({own}), or set {SETTING[asks]} = \"auto\" in your user config to let MCP clients "
                "do it")
        raise CallRefused(f"{tool} refused: it needs approval ({SETTING[asks]} = \"ask\") and {decision.reason}",
                          f"approve it in the open Workbench TUI (workbench {self.project.root}) within "
                          f"{self.approval_timeout:g} s, or run it yourself ({own})")

    def gate_network(self, work: WorkSession, caller: Caller) -> None:
        """Under `[agent] approval = "ask"`, each destination the call's code first asks the policy proxy to
        reach waits for a yes at the open TUI too, as in the agent's own sessions (`network.approval`); no
        TUI, a timeout or a no is a 403 for that destination for the rest of the call. Each question is on
        the record (`approval.decided`, what `reach_the_network`)."""
        if work.settings.agent.approval != "ask":
            return
        from workbench import approvals
        from workbench.network.approval import gate_session

        def approve(question: dict[str, Any]) -> bool:
            return self.ask_tui(work, caller, approvals.Request(
                "reach_the_network", client=one_line(caller.client)[:80],
                destination=str(question.get("destination", "")), rule=str(question.get("rule", "")))).approved

        gate_session(work.sandbox, approve)

    def ask_tui(self, work: WorkSession, caller: Caller, request: Any) -> Any:
        """Ask the project's open TUI (`workbench.approvals.ask`) and put the answer on the call's record."""
        from workbench import approvals

        decision = approvals.ask(self.project.root, request, self.approval_timeout)
        work.emit(events.APPROVAL_DECIDED, events.ApprovalDecided(
            what=request.what, requester=caller.actor, outcome=decision.outcome, approved=decision.approved,
            by=decision.by, reason=decision.reason or None, waited=decision.waited, request_id=request.id,
            details=request.details()))
        return decision

    @staticmethod
    def seq_of(work: WorkSession, event_id: str | None) -> int | None:
        """The audit seq of this session's event `event_id` (read back from the log, whoever else writes it)."""
        if event_id is None or work.audit is None:
            return None
        for entry in work.audit.entries(session=work.session_id):
            if entry.event_id == event_id:
                return entry.seq
        return None

    # --- tools -------------------------------------------------------------------------------------------
    def execute(self, caller: Caller, language: str, code: str, session: str | None = None,
                timeout: float | None = None) -> Reply:
        from workbench import languages

        arguments = {"language": language, "session": session,
                     "timeout": timeout if timeout is None or math.isfinite(timeout) else str(timeout),
                     "code_sha256": hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()}

        def body(work: WorkSession, _outcome: Outcome) -> Reply:
            if timeout is not None and not timeout > 0:
                raise UsageError("timeout must be a positive number of seconds")
            languages.get(language, work.settings)
            self.check_approval(work, caller, "execute", language=language, code=code)
            self.gate_network(work, caller)
            finished: list[str] = []
            work.bus.subscribe(lambda event: finished.append(event.id), kinds=[events.EXEC_FINISHED])
            execution = work.sandbox.execute(language, code, timeout=timeout, session=session)
            for _chunk in execution:
                pass
            result = execution.result()
            data: dict[str, Any] = {
                "exit_code": result.exit_code, "timed_out": result.timed_out, "killed_by": result.killed_by,
                "duration": round(result.duration, 3), "session": result.session, "state_lost": result.state_lost,
                "execution_id": result.execution_id, "notes": list(result.notes),
                "audit_seq": self.seq_of(work, finished[-1] if finished else None)}
            for name in ("stdout", "stderr"):
                stream = getattr(result, name)
                kept = stream.kept[:REPLY_LIMIT]  # all of it is hashed in the log; a reply stays small
                data[name] = kept.decode("utf-8", errors="backslashreplace")
                data[f"{name}_truncated"] = len(kept) < stream.total_bytes
                data[f"{name}_bytes"] = stream.total_bytes
                data[f"{name}_returned_bytes"] = len(kept)
            return Reply(True, execution_text(data), data)

        return self.run(caller, "execute", arguments, body)

    def install(self, caller: Caller, manager: str, packages: list[str]) -> Reply:
        from workbench.agent.actions import manager_names

        def body(work: WorkSession, _outcome: Outcome) -> Reply:
            if manager not in manager_names():
                raise UsageError(f"unknown package manager {manager!r}", f"one of: {', '.join(manager_names())}")
            if not packages:
                raise UsageError("no packages to install")
            self.check_approval(work, caller, "install", manager=manager, packages=list(packages))
            result = work.sandbox.install(manager, list(packages))  # type: ignore[arg-type]
            installed = [{"name": p.name, "version": p.version, "manager": p.manager} for p in result.installed]
            data = {"exit_code": result.exit_code, "installed": installed, "refused": list(result.refused),
                    "unreachable": list(result.unreachable), "output_tail": result.output[-4000:]}
            names = ", ".join(f"{p['name']} {p['version']}" for p in installed) or "nothing"
            text = f"{manager} install exit {result.exit_code}: installed {names}"
            return Reply(result.ok, text if result.ok else f"{text}\n{result.output[-2000:]}", data)

        return self.run(caller, "install", {"manager": manager, "packages": list(packages)}, body)

    def files(self, work: WorkSession, step: list[int]) -> WorkspaceFiles:
        return WorkspaceFiles(self.project.workspace, work.emit, lambda: step[0])

    def list_files(self, caller: Caller, path: str = "") -> Reply:
        def body(work: WorkSession, _outcome: Outcome) -> Reply:
            files = self.files(work, [0])
            try:
                names, capped = files.walk(files.resolve(path))
            except OutsideWorkspace as exc:
                raise CallRefused(str(exc)) from None
            except Refused as exc:
                raise CallRefused(exc.one_line()) from None
            except FileNotFoundError:
                raise UsageError(f"no such folder in the workspace: {one_line(path)}") from None
            except NotADirectoryError:
                raise UsageError(f"{one_line(path)} is not a folder") from None
            return Reply(True, "\n".join(names) or "(empty)", {"files": names, "capped_at": capped or None})

        return self.run(caller, "list_files", {"path": path}, body)

    def confined_call(self, work: WorkSession, tool: str, path: str, act: Any) -> Reply:
        """Run the agent's file tool `act(files)` on `path`; a path outside the workspace, or one the
        confined walk refused (its `file.refused` event), is a refusal."""
        files = self.files(work, [0])
        try:
            files.resolve(path)
        except OutsideWorkspace as exc:
            raise CallRefused(f"{tool} {one_line(path)}: {exc}") from None
        refusals: list[str] = []
        work.bus.subscribe(lambda event: refusals.append(event.id), kinds=[events.FILE_REFUSED])
        text, ok = act(files)
        if refusals:
            raise CallRefused(text)
        return Reply(ok, text, {"path": path})

    def read_file(self, caller: Caller, path: str) -> Reply:
        def body(work: WorkSession, _outcome: Outcome) -> Reply:
            return self.confined_call(work, "read_file", path, lambda files: files.read(path))

        return self.run(caller, "read_file", {"path": path}, body)

    def write_file(self, caller: Caller, path: str, content: str) -> Reply:
        arguments = {"path": path, "bytes": len(content.encode("utf-8", "surrogatepass"))}

        def body(work: WorkSession, _outcome: Outcome) -> Reply:
            self.check_approval(work, caller, "write_file", path=path)
            return self.confined_call(work, "write_file", path, lambda files: files.write(path, content))

        return self.run(caller, "write_file", arguments, body)

    def audit_verify(self, caller: Caller) -> Reply:
        def body(work: WorkSession, _outcome: Outcome) -> Reply:
            assert work.audit is not None
            result = work.audit.verify()
            data = {"ok": result.ok, "entries": result.entries, "root": result.root,
                    "fingerprint": result.fingerprint, "checkpoints": result.checkpoints,
                    "first_error": result.first_error, "warnings": list(result.warnings)}
            return Reply(result.ok, one_line(result.message()), data)

        return self.run(caller, "audit_verify", {}, body)

    def export_report(self, caller: Caller, path: str = "reports/audit-report.pdf") -> Reply:
        def body(work: WorkSession, _outcome: Outcome) -> Reply:
            from workbench.report import render_report

            if not path.lower().endswith(".pdf"):
                raise UsageError(f"{one_line(path)} does not end in .pdf")
            self.check_approval(work, caller, "export_report", path=path)
            files = self.files(work, [0])
            try:
                relative = files.resolve(path)
            except OutsideWorkspace as exc:
                raise CallRefused(str(exc)) from None
            with tempfile.TemporaryDirectory(prefix="workbench-report-") as scratch:
                out = Path(scratch) / "report.pdf"
                summary = render_report(self.project, out)
                data = out.read_bytes()  # our own temporary file, outside the workspace
            try:
                with Confined(self.project.workspace) as folder:
                    folder.write(relative, data)
            except Refused as exc:
                raise CallRefused(exc.one_line()) from None
            work.emit(events.FILE_CHANGED, events.FileChanged(
                path=one_line(relative), change="created", sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                by="mcp.export_report"))
            info = {"path": relative, "pages": summary.pages, "sessions": summary.sessions,
                    "executions": summary.executions, "verified": summary.verified, "bytes": len(data)}
            state = "log verified" if summary.verified else "LOG DID NOT VERIFY"
            return Reply(True, f"wrote /workspace/{relative}: {summary.pages} pages, {state}", info)

        return self.run(caller, "export_report", {"path": path}, body)

    # --- resources ---------------------------------------------------------------------------------------
    def workspace_file(self, caller: Caller, path: str) -> bytes:
        """A workspace file's bytes (at most RESOURCE_LIMIT), read through the confined walk."""
        def body(work: WorkSession, _outcome: Outcome) -> Reply:
            files = self.files(work, [0])
            try:
                relative = files.resolve(path)
                with files.confined() as folder:
                    read = folder.read(relative, RESOURCE_LIMIT)
            except OutsideWorkspace as exc:
                raise CallRefused(str(exc)) from None
            except Refused as exc:
                raise CallRefused(exc.one_line()) from None
            except (FileNotFoundError, IsADirectoryError):
                raise UsageError(f"no such file in the workspace: {one_line(path)}") from None
            return Reply(True, "", {"bytes": read.data})

        reply = self.run(caller, "resource:workspace", {"path": path}, body)
        if not reply.ok:
            raise ValueError(reply.text)
        return reply.data["bytes"]

    def audit_tail(self, caller: Caller, count: int = 50) -> str:
        """The last `count` audit entries, one line each (seq, time, kind, actor), made inert."""
        def body(work: WorkSession, _outcome: Outcome) -> Reply:
            assert work.audit is not None
            size = work.audit.size()
            start = max(0, size - max(1, min(count, TAIL_LIMIT)))
            lines = [f"{e.seq} {e.time} {one_line(e.kind)} {one_line(e.actor)} session={one_line(e.session_id)}"
                     for e in work.audit.entries(from_seq=start)]
            return Reply(True, "\n".join(lines))

        return self.run(caller, "resource:audit_tail", {"count": count}, body).text


def execution_text(data: dict[str, Any]) -> str:
    """The result as text for clients that read only the text: the output first, as the code printed it
    (what the caller asked for), then stderr under its heading, then the exit code and audit seq; a cut
    stream says how much of it came back."""
    parts = []
    for name in ("stdout", "stderr"):
        if data[name] or data[f"{name}_truncated"]:
            cut = (f" (truncated: the first {data[f'{name}_returned_bytes']} of {data[f'{name}_bytes']} bytes)"
                   if data[f"{name}_truncated"] else "")
            parts.append(data[name] + (f"\n--- stdout{cut}" if cut else "") if name == "stdout"
                         else f"--- stderr{cut}\n{data[name]}")
    parts.append(f"exit code {data['exit_code']}" + (" (timed out)" if data["timed_out"] else "")
                 + (f" (killed: {data['killed_by']})" if data["killed_by"] else "")
                 + f"; audit seq {data['audit_seq']}")
    return "\n".join(part.rstrip("\n") if i < len(parts) - 1 else part for i, part in enumerate(parts))
