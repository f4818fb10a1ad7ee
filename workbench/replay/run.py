"""`replay`: run recorded executions again in a throw-away copy of the workspace and say what reproduced.

The replay is a session of its own (trigger `replay`): its executions are audited as any are, and each is
followed by a `replay.compared` naming the recorded execution and the verdict. Each recorded execution runs
  * in the copy (`workbench.replay.scratch`), restored to the inputs it read, with the session's earlier
    replayed executions' outputs in place; an input that cannot be restored as recorded means the execution
    is not run (`not_replayed`), never run on something else;
  * on the image its environment recorded, by the engine's id (digest), not by a tag that may have moved;
    an image that is gone is `not_replayed`;
  * with the language, code and timeout the log holds. A warm-session cell runs as a one-off (a note says
    so): variables earlier cells left are not there, and its output says whether that mattered.
The environment the replay ran with is digested as any execution's; a digest other than the recorded one is
said plainly (which packages differ, where the log holds both lists), beside the bit-for-bit verdict.

The real workspace is only ever read (through `workbench.confined`), never mounted: the sandbox of the
replay is given a project whose workspace is the copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from workbench import events
from workbench.errors import WorkbenchError
from workbench.inert import one_line
from workbench.project import Project
from workbench.replay import record as rec
from workbench.replay.compare import Difference, compare
from workbench.replay.scratch import Scratch

REPRODUCED, DIFFERS, NOT_REPLAYED = "reproduced", "differs", "not_replayed"
PACKAGES_NAMED = 6  # an environment difference names at most this many packages


@dataclass(frozen=True)
class ReplayProject(Project):
    """The project, with the replay's copy as its workspace: what the replay's sandbox mounts and diffs."""

    copy: Path = Path()

    @property
    def workspace(self) -> Path:
        return self.copy


@dataclass
class Outcome:
    """One recorded execution's replay."""

    recorded: rec.Recorded
    status: str
    differences: list[Difference] = field(default_factory=list)
    replay_execution_id: str = ""
    replay_environment: str | None = None
    environment_note: str = ""  # one line where the environment differs (or could not be compared)
    inputs: str = ""  # one line: where the inputs came from
    notes: list[str] = field(default_factory=list)

    @property
    def environment(self) -> str | None:
        return self.recorded.finished.environment


@dataclass
class Report:
    session_id: str  # the recorded session
    replay_session_id: str
    outcomes: list[Outcome]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return bool(self.outcomes) and all(o.status == REPRODUCED for o in self.outcomes)


def image_of(execution: rec.Recorded, selection: rec.Selection) -> tuple[str, str]:
    """(the image to run, one line saying how it was chosen)."""
    env = selection.environments.get(execution.finished.environment or "")
    if env is not None and env.image_id.startswith("sha256:"):
        return env.image_id, f"image {one_line(env.image or '?')} by its id {env.image_id[:19]}"
    if execution.image:
        return execution.image, (f"image {one_line(execution.image)} by name (the log holds no image id for this "
                                 "execution)")
    return "", "no image recorded"


def environment_note(recorded: str | None, replayed: str | None, envs: dict[str, events.EnvironmentRecorded]) -> str:
    if not recorded:
        return "the execution recorded no environment: not compared"
    if not replayed:
        return "the replay's environment could not be worked out: not compared"
    if recorded == replayed:
        return ""
    before, after = envs.get(recorded), envs.get(replayed)
    if before is None or after is None:
        return f"the environment differs: recorded {recorded[:19]}, replay {replayed[:19]}"
    was = {f"{e}:{n} {v}" for e, n, v, _a in before.components()}
    now = {f"{e}:{n} {v}" for e, n, v, _a in after.components()}
    changes = [f"-{p}" for p in sorted(was - now)] + [f"+{p}" for p in sorted(now - was)]
    image = "" if before.image_id == after.image_id else f"; image {before.image_id[:19]} -> {after.image_id[:19]}"
    named = ", ".join(changes[:PACKAGES_NAMED]) + (f" and {len(changes) - PACKAGES_NAMED} more"
                                                   if len(changes) > PACKAGES_NAMED else "")
    return one_line(f"the environment differs: {named or 'same packages'}{image}")


def replay(project: Project, *, session_id: str | None = None, execution_id: str | None = None,
           actor: str | None = None, settings_overrides: dict | None = None) -> Report:
    """Replay the recorded executions of a session (or one execution); see the module's docstring."""
    from workbench.audit import AuditLog

    if not project.audit_db.exists():
        raise rec.ReplayError(f"no audit log in {project.root}", "nothing has been recorded in this project yet")
    log = AuditLog.open_path(project.audit_db, create=False, readonly=True)
    try:
        _verified(log)
        selection = rec.select(log, session_id, execution_id)
    finally:
        log.close()
    from workbench.session import WorkSession

    with WorkSession.open(project, actor, trigger=rec.REPLAY_TRIGGER, details={"command": "audit replay"}) as work:
        seen_envs: dict[str, events.EnvironmentRecorded] = dict(selection.environments)
        work.bus.subscribe(lambda e: _remember(e, seen_envs), kinds=[events.ENVIRONMENT_RECORDED])
        runner = _Runner(project, work, selection, seen_envs, settings_overrides or {})
        try:
            outcomes = [runner.one(execution) for execution in selection.executions]
        finally:
            runner.close()
    return Report(selection.session_id, work.session_id, outcomes, [*selection.notes, *runner.notes])


def _verified(log) -> None:  # noqa: ANN001 - an AuditLog
    """A replay says whether the record holds up; a record that may have been changed cannot be its measure."""
    from workbench.audit import KeyStore
    from workbench.audit.verify import verify_store

    result = verify_store(log.store, key_store=KeyStore())
    if not result.ok:
        raise rec.LogNotVerified(f"the audit log does not verify ({one_line(result.first_error or 'unknown')}): "
                                 "a replay compares with what it records, so it is refused",
                                 "see: workbench audit verify")


def _remember(event: events.Event, seen: dict[str, events.EnvironmentRecorded]) -> None:
    payload = event.decoded()
    if isinstance(payload, events.EnvironmentRecorded):
        seen.setdefault(payload.digest, payload)


class _Runner:
    """The replay's copy and sandbox, made on first need, and one recorded execution at a time."""

    def __init__(self, project: Project, work, selection: rec.Selection,  # noqa: ANN001 - a WorkSession
                 envs: dict[str, events.EnvironmentRecorded], overrides: dict):
        self.project, self.work, self.selection, self.envs, self.overrides = project, work, selection, envs, overrides
        self.scratch = Scratch(project.state_dir, project.workspace)
        self.scratch.copy_environments()
        self.sandbox = None
        self.notes: list[str] = []

    def _sandbox_on(self, image: str):  # noqa: ANN202 - a Sandbox
        from workbench.sandbox import Sandbox

        if self.sandbox is None:
            overrides = dict(self.overrides)
            overrides["sandbox"] = {**overrides.get("sandbox", {}), "image": image}
            settings = self.project.settings(overrides)
            copy = ReplayProject(self.project.root, self.project.id, self.project.format, copy=self.scratch.workspace)
            self.sandbox = Sandbox.open(copy, bus=self.work.bus, session_id=self.work.session_id,
                                        actor=self.work.actor, settings=settings)
        elif self.sandbox.image != image:
            self.sandbox.use_image(image)
        return self.sandbox

    def one(self, recorded: rec.Recorded) -> Outcome:
        outcome = self._run(recorded)
        self.work.emit(events.REPLAY_COMPARED, events.ReplayCompared(
            execution_id=recorded.execution_id, session=recorded.session_id, status=outcome.status,
            replay_execution_id=outcome.replay_execution_id,
            differences=tuple(d.line for d in outcome.differences),
            environment=recorded.finished.environment, replay_environment=outcome.replay_environment))
        return outcome

    def _run(self, recorded: rec.Recorded) -> Outcome:
        image, how = image_of(recorded, self.selection)
        restored = self.scratch.restore(recorded)
        inputs = f"{len(restored.from_workspace)} from workspace, {len(restored.from_replay)} from replay"
        if restored.problems:
            return Outcome(recorded, NOT_REPLAYED, [Difference("input", p) for p in restored.problems],
                           inputs=inputs)
        if not image:
            return Outcome(recorded, NOT_REPLAYED, [Difference("image", "no image recorded for this execution")])
        from workbench.sandbox.errors import ImageMissing

        try:
            sandbox = self._sandbox_on(image)
        except ImageMissing:
            return Outcome(recorded, NOT_REPLAYED, [Difference("image", f"{how} is no longer in the engine")],
                           inputs=inputs)
        except WorkbenchError as exc:
            return Outcome(recorded, NOT_REPLAYED, [Difference("image", f"{how}: {exc.one_line()}")], inputs=inputs)
        if not sandbox.engine.image_exists(image):
            return Outcome(recorded, NOT_REPLAYED, [Difference("image", f"{how} is no longer in the engine")],
                           inputs=inputs)
        notes = [how]
        if recorded.warm_session:
            notes.append(f"recorded in warm session {one_line(recorded.warm_session)!r}; replayed as a one-off run "
                         "(variables earlier cells left are not there)")
        try:
            lacking = self._lacking(sandbox, recorded.language)
            if lacking:  # installing them would change the project's image: a replay changes nothing real
                return Outcome(recorded, NOT_REPLAYED, [Difference("image", f"{how} lacks the packages "
                               f"{recorded.language} needs now ({' '.join(lacking)})")], inputs=inputs, notes=notes)
            execution = sandbox.execute(recorded.language, recorded.code, timeout=recorded.timeout)
            for _chunk in execution:  # drained: the result holds every byte counted and the kept ones
                pass
            result = execution.result()
        except WorkbenchError as exc:
            return Outcome(recorded, NOT_REPLAYED, [Difference("start", exc.one_line())], inputs=inputs, notes=notes)
        differences = compare(recorded, result)
        return Outcome(recorded, DIFFERS if differences else REPRODUCED, differences,
                       replay_execution_id=result.execution_id, replay_environment=result.environment,
                       environment_note=environment_note(recorded.finished.environment, result.environment,
                                                         self.envs),
                       inputs=inputs, notes=notes)

    @staticmethod
    def _lacking(sandbox, language: str) -> list[str]:  # noqa: ANN001 - a Sandbox
        from workbench import languages

        return languages.missing_packages(sandbox, languages.get(language, sandbox.settings))

    def close(self) -> None:
        try:
            if self.sandbox is not None:
                self.sandbox.close()
        finally:
            self.scratch.close()
            self.notes.extend(self.scratch.notes)
