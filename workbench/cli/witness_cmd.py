"""`workbench witness` (run a cosigning witness) and `workbench audit witness` (use witnesses for a log).

Thin wrappers over `workbench.audit.witness_server` and `workbench.audit.witness`. Bad input (a malformed
URL or verifier key) is one line and exit 2; a witness that does not answer, refuses, or answers with a
bad signature is one line naming it, and the project's log is never changed by a failed operation.
"""

from __future__ import annotations

from pathlib import Path

import click

from workbench.audit import AuditLog, Checkpoint, KeyStore
from workbench.audit.cosign import WitnessKey, log_vkey
from workbench.audit.log import default_origin
from workbench.audit.witness import Outcome, Registry, WitnessError, check_url, queue_and_deliver
from workbench.cli.common import one_line, open_project, project_option, say
from workbench.errors import UsageError

dir_option = click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=None,
                          help="The witness's folder (state and key); default: <user data dir>/witness.")


def _service(folder: Path | None, name: str | None = None):  # noqa: ANN202 - the import stays lazy
    from workbench.audit.witness_server import WitnessService, default_dir

    return WitnessService(folder or default_dir(), name=name)


# --- workbench witness ----------------------------------------------------------------------------
@click.group()
def witness() -> None:
    """Run a cosigning witness (C2SP tlog-witness) for other people's audit logs."""


@witness.command()
@click.option("--listen", required=True, metavar="HOST:PORT", help="Address to serve on (port 0 picks a free one).")
@dir_option
@click.option("--name", help="The witness's key name (set once, on first start); default from the host name.")
@click.option("--allow", "allow", multiple=True, metavar="VKEY",
              help="Also trust this log key (the vkey `workbench audit witness add` prints); repeatable.")
@click.option("--prefix", default="", help="URL path prefix before /add-checkpoint (default: none).")
def serve(listen: str, folder: Path | None, name: str | None, allow: tuple[str, ...], prefix: str) -> None:
    """Serve add-checkpoint over HTTP until interrupted."""
    from workbench.audit.witness_server import serve as serve_forever

    if prefix and (not prefix.startswith("/") or any(c.isspace() or c in "?#" for c in prefix)):
        raise UsageError(f"--prefix {prefix[:40]!r} must be a path starting with '/'")
    service = _service(folder, name)
    try:
        for vkey in allow:
            service.allow(vkey)

        def ready(server) -> None:  # noqa: ANN001
            host, port = server.server_address[:2]
            shown = f"[{host}]" if ":" in str(host) else host
            say(f"witness {service.name} listening on http://{shown}:{port}{prefix.rstrip('/')}")
            say(f"vkey {service.key.vkey()}")
            say(f"logs trusted: {len(service.allowed())}")
            if service.key_info.insecure_fallback:
                say(f"warning: the witness key is kept in a plain file ({service.key_store.key_file}), "
                    "not an OS keyring", err=True)

        serve_forever(service, listen, prefix, ready)
    finally:
        service.close()


@witness.command("allow")
@click.argument("vkey")
@dir_option
def allow_log(vkey: str, folder: Path | None) -> None:
    """Trust a log's key: cosign its checkpoints from now on."""
    service = _service(folder)
    try:
        allowed = service.allow(vkey)
    finally:
        service.close()
    say(f"witness {service.name} now trusts log {allowed.origin} (key {allowed.key.fingerprint[:16]})")


@witness.command("key")
@dir_option
def witness_key(folder: Path | None) -> None:
    """Print the witness's verifier key (give it to the people whose logs it cosigns)."""
    service = _service(folder)
    service.close()
    say(service.key.vkey())


@witness.command("logs")
@dir_option
def witness_logs(folder: Path | None) -> None:
    """List the logs this witness trusts, the last size it cosigned for each, and refused requests."""
    service = _service(folder)
    try:
        latest = {origin: (size, root, when) for origin, size, root, when in service.latest()}
        allowed = service.allowed()
        evidence = service.evidence()
    finally:
        service.close()
    if not allowed:
        say("no log trusted yet (add one with: workbench witness allow VKEY)")
    for entry in allowed:
        size, root, when = latest.get(entry.origin, (None, b"", ""))
        state = f"cosigned size {size} root {root.hex()[:12]}… at {when}" if size is not None else "nothing cosigned yet"
        say(f"{one_line(entry.origin)}: {state}")
    for when, origin, status, reason in evidence:
        say(one_line(f"refused {when} {origin} ({status}): {reason}"))


# --- workbench audit witness -------------------------------------------------------------------------
@click.group("witness")
def audit_witness() -> None:
    """Register cosigning witnesses for this project's log and push checkpoints to them."""


def _log_context(project_dir: Path) -> tuple[str, Path, Checkpoint | None, str]:
    """(origin, audit.db path, latest checkpoint or None, the log key's vkey or "")."""
    project = open_project(project_dir)
    origin = None
    latest = None
    if project.audit_db.exists():
        with AuditLog.open_path(project.audit_db, create=False, readonly=True) as log:
            origin = log.origin
            latest = log.latest_checkpoint()
    if origin is None:
        settings = project.settings().audit
        origin = settings.origin or default_origin(project.id)
    loaded = KeyStore().load(create=False)
    vkey = log_vkey(origin, loaded[0].public) if loaded else ""
    return origin, project.audit_db, latest, vkey


def _say_outcomes(outcomes: list[Outcome]) -> list[Outcome]:
    """Print successes; return the problems (the caller says them)."""
    problems = []
    for outcome in outcomes:
        if outcome.kind in ("cosigned", "superseded"):
            say(outcome.line())
        else:
            problems.append(outcome)
    return problems


@audit_witness.command("add")
@click.argument("url")
@click.argument("vkey")
@project_option
@click.option("--no-push", is_flag=True, help="Only register (a reviewer trusting a witness's cosignatures).")
def add(url: str, vkey: str, project_dir: Path, no_push: bool) -> None:
    """Register the witness at URL (its submission prefix) with verifier key VKEY for this project's log."""
    try:
        url = check_url(url)
    except ValueError as exc:
        raise UsageError(f"bad witness URL: {exc}", "e.g. http://witness.example:7380") from exc
    try:
        key = WitnessKey.parse(vkey)
    except ValueError as exc:
        raise UsageError(f"bad witness verifier key: {exc}", "run `workbench witness key` on the witness") from exc
    origin, db_path, latest, own_vkey = _log_context(project_dir)
    with Registry.open() as registry:
        registry.add(origin, url, key)
        say(f"registered witness {key.name} at {url} for log {origin}")
        if own_vkey:
            say(f"its operator trusts this log with: workbench witness allow {own_vkey}")
        if no_push:
            return
        if latest is None:
            say("nothing is signed yet: checkpoints are pushed to it as they are signed")
            return
        outcomes = queue_and_deliver(origin, db_path, latest, force=True, registry=registry, log_vkey=own_vkey)
    ours = [o for o in outcomes if o.witness.key == key]
    problems = _say_outcomes(ours)
    for problem in problems:
        if problem.kind in ("queued", "waiting", "not-allowed"):
            say(f"workbench: warning: {problem.line()}", err=True)
        else:
            raise WitnessError(problem.line())


@audit_witness.command("push")
@project_option
def push(project_dir: Path) -> None:
    """Deliver queued checkpoints (and the latest one) to every registered witness now."""
    origin, db_path, latest, own_vkey = _log_context(project_dir)
    with Registry.open() as registry:
        if not registry.witnesses(origin):
            raise WitnessError(f"no witness is registered for log {origin}",
                               "register one with: workbench audit witness add -p DIR URL VKEY")
        if latest is None:
            raise WitnessError("nothing is signed yet", "sign a checkpoint with: workbench audit checkpoint --new")
        outcomes = queue_and_deliver(origin, db_path, latest, force=True, registry=registry, log_vkey=own_vkey)
    problems = _say_outcomes(outcomes)
    if not outcomes:
        say("every registered witness has cosigned the latest checkpoint already")
    for problem in problems[:-1]:
        say(f"workbench: warning: {problem.line()}", err=True)
    if problems:
        raise WitnessError(problems[-1].line())


@audit_witness.command("list")
@project_option
def list_witnesses(project_dir: Path) -> None:
    """The witnesses registered for this project's log: what each cosigned, what is queued, refusals."""
    origin, _db, _latest, _vkey = _log_context(project_dir)
    with Registry.open_existing() as registry:
        witnesses = registry.witnesses(origin)
        known = {k.vkey: k for k in registry.known(origin)}
        queued = registry.queued(origin)
        refusals = registry.refusals(origin)
    if not witnesses:
        say(f"no witness registered for log {origin}")
        return
    for w in witnesses:
        k = known.get(w.key.vkey())
        state = (f"cosigned size {k.size}" if k and k.root is not None else
                 f"at size {k.size}" if k else "nothing cosigned yet")
        waiting = [q for q in queued if q.vkey == w.key.vkey()]
        extra = f"; {len(waiting)} queued (last error: {waiting[0].last_error or 'not tried yet'})" if waiting else ""
        say(one_line(f"{w.name} {w.url}: {state}{extra}"))
    for vkey, size, status, reason, when in refusals[-5:]:
        say(one_line(f"refused {when} by {vkey.split('+', 1)[0]} (size {size}, {status}): {reason}"))


@audit_witness.command("remove")
@click.argument("which", metavar="NAME|URL|VKEY")
@project_option
def remove(which: str, project_dir: Path) -> None:
    """Stop pushing to a witness (its cosignatures already in the log stay)."""
    origin, _db, _latest, _vkey = _log_context(project_dir)
    with Registry.open() as registry:
        gone = registry.remove(origin, which.strip())
    if not gone:
        raise UsageError(f"no witness {which[:80]!r} is registered for log {origin}")
    for w in gone:
        say(f"removed witness {w.name} ({w.url})")


# --- what `audit verify` adds ------------------------------------------------------------------------
def verify_witnesses(store, require_witness: bool) -> None:  # noqa: ANN001 - an AuditStore, opened read-only
    """Print each cosigned checkpoint; fail (exit 1, one line) on a cosignature that contradicts the log,
    or, with `require_witness`, when the newest checkpoint has none from a registered witness."""
    from workbench.audit.cosign import witness_report
    from workbench.audit.verify import Failure, parse_checkpoints
    from workbench.cli.common import VerificationFailed

    origin = store.meta("origin") or ""
    with store.snapshot():
        try:
            checkpoints = parse_checkpoints(store.checkpoint_rows(), origin)
        except Failure as exc:
            raise VerificationFailed(str(exc)) from exc
        report = witness_report(store, checkpoints, origin)
    show_witness_report(report, require_witness)


def show_witness_report(report, require_witness: bool) -> None:  # noqa: ANN001 - a cosign.WitnessReport
    """Print who cosigned what (a project's log or an export's); fail as `verify_witnesses` says."""
    from workbench.cli.common import VerificationFailed

    if report.first_error:
        raise VerificationFailed(report.first_error)
    for line in report.lines():
        say(one_line(line) if not line.startswith("  ") else "  " + one_line(line))
    for warning in report.warnings:
        say(f"warning: {one_line(warning)}")
    if require_witness and not report.newest_cosigned:
        newest = report.newest.label() if report.newest else "the log (no checkpoint yet)"
        raise VerificationFailed(f"--require-witness: {newest} has no cosignature from a registered witness"
                                 + (f" ({report.queued} push(es) queued: workbench audit witness push)"
                                    if report.queued else ""))
