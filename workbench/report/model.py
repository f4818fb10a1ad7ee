"""What the report shows, collected from audit entries into plain dataclasses.

Why a separate model: the PDF code then only lays out values, and the collection (the part that must
survive any log, however odd) is testable without reportlab. `collect` reads entries once, in order,
and never raises on an unknown kind or a missing field.

Output excerpts: an execution's stdout/stderr are reassembled from its ``exec.output`` events. The log
keeps up to the sandbox's cap (megabytes); the report shows the first `EXCERPT_LINES` lines /
`EXCERPT_CHARS` characters of each stream and says how much more the log and the run held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from workbench import events
from workbench.report import payload as P
from workbench.report.records import (  # noqa: F401 (re-exported: the report's records, by their old names)
    EXCERPT_CHARS,
    EXCERPT_LINES,
    AgentStep,
    ArtifactRef,
    DbConnection,
    EntryLike,
    ErrorNote,
    Execution,
    FileTouch,
    HttpRequest,
    InstallNetwork,
    Item,
    LanguageTotals,
    Package,
    ReportModel,
    Session,
    StreamExcerpt,
    TaskNote,
    model_of_actor,
)


class _Collector:
    def __init__(self) -> None:
        self.model = ReportModel()
        self.sessions: dict[str, Session] = {}
        self.open_execs: dict[str, Execution] = {}
        self.models: dict[str, None] = {}
        self.actors: dict[str, None] = {}
        self.users: dict[str, None] = {}
        self.versions: dict[str, None] = {}
        self.engines: dict[str, None] = {}

    def session(self, entry: EntryLike) -> Session:
        sid = str(entry.session_id or "")
        found = self.sessions.get(sid)
        if found is None:
            found = Session(sid, entry.seq, entry.time)
            self.sessions[sid] = found
            self.model.sessions.append(found)
        return found

    def add(self, entry: EntryLike) -> None:
        m = self.model
        m.entries += 1
        if m.first_seq is None:
            m.first_seq = entry.seq
        m.last_seq = entry.seq
        if m.first_time is None or entry.time < m.first_time:
            m.first_time = entry.time
        if m.last_time is None or entry.time > m.last_time:
            m.last_time = entry.time
        actor, user = str(entry.actor or ""), str(entry.user or "")
        self.actors.setdefault(actor)
        if user:
            self.users.setdefault(user)
        model_name = model_of_actor(actor)
        if model_name:
            self.models.setdefault(model_name)
        session = self.session(entry)
        session.entries += 1
        session.finished_at = entry.time
        if actor and actor not in session.actors:
            session.actors.append(actor)
        if user and user not in session.users:
            session.users.append(user)
        payload = entry.payload if isinstance(entry.payload, dict) else {}
        kind = str(entry.kind or "")
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, entry, session, payload)
        elif kind.startswith("llm."):
            self.models_named_in(payload)
            if kind == events.LLM_ACTION:
                session.agent_steps += 1
                chosen = events.LlmAction.decode(payload)
                action = chosen.action if isinstance(chosen.action, dict) else {}
                session.items.append(AgentStep(entry.time, actor, chosen.step, chosen.action_name(),
                                               chosen.thought or P.get_str(action, "thought"), ""))
            elif kind == events.LLM_MALFORMED:
                session.agent_steps += 1
                malformed = events.LlmMalformed.decode(payload)
                session.items.append(AgentStep(entry.time, actor, malformed.step, P.get_str(payload, "action"),
                                               P.get_str(payload, "thought"), malformed.error))
        else:
            m.unknown_kinds[kind] += 1
            session.other_kinds[kind] += 1

    def models_named_in(self, payload: dict[str, Any]) -> None:
        # Not in the contract: older agents and plug-ins named their model in the payload itself.
        for key in ("model", "model_name"):
            name = P.get_str(payload, key)
            if name:
                self.models.setdefault(name)

    # --- handlers: each decodes its payload through the event contract (any version, never raises) ----
    def execution(self, entry: EntryLike, session: Session, execution_id: str) -> Execution:
        exec_id = execution_id or f"(no id, entry {entry.seq})"
        found = self.open_execs.get(exec_id)
        if found is None:
            found = Execution(len(self.model.executions) + 1, exec_id, session.id, str(entry.actor or ""),
                              str(entry.user or ""), entry.seq)
            self.open_execs[exec_id] = found
            self.model.executions.append(found)
            session.items.append(found)
        found.entry_hashes.append((entry.seq, str(entry.hash or "")))
        return found

    def on_session_started(self, entry: EntryLike, session: Session, payload: dict[str, Any]) -> None:
        p = events.SessionStarted.decode(payload)
        session.started_at = entry.time
        session.trigger = p.trigger or session.trigger
        session.workbench_version = p.workbench_version
        if session.workbench_version:
            self.versions.setdefault(session.workbench_version)
        session.schedule = p.schedule or ""
        session.cron = p.cron or ""
        session.details = {k: v for k, v in payload.items()
                           if k not in ("trigger", "project", "project_id", "workbench_version", "schedule",
                                        "cron")}
        self.models_named_in(payload)

    def on_sandbox_started(self, entry: EntryLike, session: Session, payload: dict[str, Any]) -> None:
        p = events.SandboxStarted.decode(payload)
        bits = [p.engine or "unknown engine", {True: "rootless", False: "rootful", None: ""}[p.rootless],
                {True: "limits enforced", False: "limits NOT enforced", None: ""}[p.limits_enforced]]
        if p.image:
            bits.append(f"image {p.image}")
        if p.user:
            bits.append(f"runs as {p.user}")
        session.sandbox = ", ".join(b for b in bits if b)
        self.engines.setdefault(session.sandbox)

    def on_session_finished(self, entry: EntryLike, session: Session, payload: dict[str, Any]) -> None:
        session.outcome = events.SessionFinished.decode(payload).outcome or "finished"
        session.finished_at = entry.time

    def on_exec_started(self, entry: EntryLike, session: Session, payload: dict[str, Any]) -> None:
        p = events.ExecStarted.decode(payload)
        ex = self.execution(entry, session, p.execution_id)
        ex.started_at = entry.time
        ex.language = p.language or ex.language
        ex.code = p.code
        ex.limits = p.limits
        ex.warm_session = p.session or ""

    def on_exec_output(self, entry: EntryLike, session: Session, payload: dict[str, Any]) -> None:
        p = events.ExecOutput.decode(payload)
        ex = self.execution(entry, session, p.execution_id)
        stream = ex.stderr if p.stream == "stderr" else ex.stdout
        stream.add(p.text or p.data or "")

    def on_exec_finished(self, entry: EntryLike, session: Session, payload: dict[str, Any]) -> None:
        p = events.ExecFinished.decode(payload)
        ex = self.execution(entry, session, p.execution_id)
        ex.finished = True
        ex.finished_at = entry.time
        ex.language = ex.language or p.language
        ex.exit_code = p.exit_code
        ex.duration = p.duration if p.duration is not None and p.duration >= 0 else None
        ex.timed_out = bool(p.timed_out)
        ex.killed_by = p.killed_by or ""
        ex.limits_enforced = p.limits_enforced
        ex.state_lost = bool(p.state_lost)
        ex.notes = P.get_strs(payload, "notes")
        ex.warm_session = ex.warm_session or p.session or ""
        for stream in (ex.stdout, ex.stderr):
            info = p.stream(stream.name)
            stream.total_bytes = P.get_int(info, "total_bytes")
            stream.kept_bytes = P.get_int(info, "kept_bytes")
            stream.sha256 = P.get_str(info, "sha256")
            stream.truncated = bool(P.get_bool(info, "truncated"))
        for item in p.files:
            if isinstance(item, dict):
                self.touch(ex.files, item)
        for item in p.files_read:  # read, not touched: the report's list of files changed stays as it was
            if isinstance(item, dict):
                kind = P.get_str(item, "kind") or "file"
                ex.files_read.append(FileTouch(P.get_str(item, "path") or "(no path)",
                                               "read" if kind == "file" else kind,
                                               P.get_str(item, "sha256") or None, P.get_int(item, "size")))
        ex.reads_own = {str(k): P.get_int(p.reads_own, k) or 0 for k in p.reads_own}
        for item in p.artifacts:
            if isinstance(item, dict):
                ex.artifacts.append(ArtifactRef(P.get_str(item, "path"), P.get_str(item, "mime"),
                                                P.get_str(item, "sha256"), P.get_int(item, "size")))
        self.open_execs.pop(ex.execution_id, None)

    def touch(self, into: list[FileTouch] | None, item: dict[str, Any]) -> None:
        touch = FileTouch(P.get_str(item, "path") or "(no path)", P.get_str(item, "change") or "changed",
                          P.get_str(item, "sha256") or None, P.get_int(item, "size"))
        if into is not None:
            into.append(touch)
        _, times = self.model.files.get(touch.path, (touch, 0))
        self.model.files[touch.path] = (touch, times + 1)

    def on_file_changed(self, entry: EntryLike, session: Session, payload: dict[str, Any]) -> None:
        p = events.FileChanged.decode(payload)
        self.touch(None, {"path": p.path, "change": p.change, "sha256": p.sha256, "size": p.size})

    def on_package(self, entry: EntryLike, session: Session, payload: dict[str, Any]) -> None:
        p = events.PackageInstalled.decode(payload)
        pkg = Package(p.name or "(unnamed)", p.version, p.manager, entry.time, session.id, str(entry.actor or ""))
        self.model.packages.append(pkg)
        session.items.append(pkg)

    def on_install_egress(self, entry: EntryLike, session: Session, payload: dict[str, Any]) -> None:
        p = events.InstallEgress.decode(payload)
        note = InstallNetwork(entry.time, session.id, str(entry.actor or ""), p.manager,
                              tuple(map(str, p.reached)), tuple(map(str, p.refused)), tuple(map(str, p.unreachable)),
                              p.requests or 0)
        self.model.install_networks.append(note)
        session.items.append(note)

    def on_net_connection(self, entry: EntryLike, session: Session, payload: dict[str, Any]) -> None:
        p = events.NetConnection.decode(payload)
        conn = DbConnection(entry.time, session.id, p.execution_id or "", p.database or "?", p.role or "",
                            p.duration, p.bytes_up, p.bytes_down, p.refused or "")
        self.model.db_connections.append(conn)
        if conn.execution_id:
            self.execution(entry, session, conn.execution_id).connections.append(conn)

    def on_net_request(self, entry: EntryLike, session: Session, payload: dict[str, Any]) -> None:
        p = events.NetRequest.decode(payload)
        request = HttpRequest(entry.time, session.id, p.execution_id or "", p.destination or "?", p.method or "?",
                              p.path or "", p.status, p.bytes_up, p.bytes_down, p.duration, p.credential or "",
                              p.refused or "")
        self.model.http_requests.append(request)
        if request.execution_id:
            self.execution(entry, session, request.execution_id).requests.append(request)

    def on_secret_leak(self, entry: EntryLike, session: Session, payload: dict[str, Any]) -> None:
        p = events.SecretLeak.decode(payload)
        self.model.secret_leaks += 1
        where = f" in its {p.stream}" if p.stream else ""
        times = f" ({p.count}x)" if p.count else ""
        self.execution(entry, session, p.execution_id or "").leaks.append(
            f"secret {p.secret} found{where}{times} and redacted from what is kept")

    def on_error(self, entry: EntryLike, session: Session, payload: dict[str, Any]) -> None:
        p = events.Error.decode(payload)
        message = (p.message or p.error or p.text
                   or ", ".join(f"{k}={P.text(v)}" for k, v in payload.items()) or "(no message)")
        where = p.where or p.source
        note = ErrorNote(entry.time, session.id, str(entry.actor or ""),
                         f"{where}: {message}" if where else message, entry.seq)
        self.model.errors.append(note)
        session.items.append(note)

    def on_task(self, entry: EntryLike, session: Session, payload: dict[str, Any]) -> None:
        if entry.kind == events.TASK_FINISHED:
            p = events.TaskFinished.decode(payload)
            ok = p.succeeded()
            bits = [b for b in (p.outcome or p.status, "succeeded" if ok else ("failed" if ok is False else ""))
                    if b]
            summary = p.summary or p.answer
            words = "; ".join(dict.fromkeys(bits)) + (f": {summary}" if summary else "")
        else:
            words = (events.TaskStarted.decode(payload).words() or P.get_str(payload, "outcome")
                     or P.get_str(payload, "status"))
        session.items.append(TaskNote(entry.time, entry.kind, str(entry.actor or ""), words))


def _ignore(collector: _Collector, entry: EntryLike, session: Session, payload: dict[str, Any]) -> None:
    """Kinds the report reads nothing from here: an install's start (its outcome follows), a saved note, an
    environment's package list (the software appendix reads those, `workbench.report.software`)."""


_HANDLERS: dict[str, Callable[[_Collector, EntryLike, Session, dict[str, Any]], None]] = {
    events.SESSION_STARTED: _Collector.on_session_started,
    events.SESSION_FINISHED: _Collector.on_session_finished,
    events.EXEC_STARTED: _Collector.on_exec_started,
    events.EXEC_OUTPUT: _Collector.on_exec_output,
    events.EXEC_FINISHED: _Collector.on_exec_finished,
    events.PACKAGE_INSTALLED: _Collector.on_package,
    events.INSTALL_EGRESS: _Collector.on_install_egress,
    events.NET_CONNECTION: _Collector.on_net_connection,
    events.NET_REQUEST: _Collector.on_net_request,
    events.SECRET_LEAK: _Collector.on_secret_leak,
    events.PACKAGE_INSTALL_STARTED: _ignore,
    events.ERROR: _Collector.on_error,
    events.TASK_STARTED: _Collector.on_task,
    events.TASK_FINISHED: _Collector.on_task,
    events.FILE_CHANGED: _Collector.on_file_changed,
    events.SANDBOX_STARTED: _Collector.on_sandbox_started,
    events.MEMORY_SAVED: _ignore,
    events.ENVIRONMENT_RECORDED: _ignore,
}


def collect(entries: Iterable[EntryLike], progress: Callable[[int], None] | None = None) -> ReportModel:
    """Build the report model from entries in log order; `progress(n)` is called every 1,000 entries."""
    collector = _Collector()
    for n, entry in enumerate(entries, 1):
        collector.add(entry)
        if progress is not None and n % 1000 == 0:
            progress(n)
    m = collector.model
    m.models = list(collector.models)
    m.actors = [a for a in collector.actors if a]
    m.users = list(collector.users)
    m.versions = list(collector.versions)
    m.engines = list(collector.engines)
    return m
