"""`workbench audit sbom`: the environment an execution ran with, as a CycloneDX or SPDX document.

Thin: read the log's recorded environments (`workbench.audit.sbom`), pick one, write the validated document.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from workbench.audit import AuditLog
from workbench.audit import sbom as sboms
from workbench.audit.errors import AuditError
from workbench.cli.common import one_line, open_project, project_option, say
from workbench.errors import UsageError


@click.command("sbom")
@project_option
@click.option("--execution", help="The execution whose environment to export (its id, or the start of it); "
                                  "default: the newest execution's.")
@click.option("--format", "fmt", type=click.Choice(sboms.FORMATS), default="cyclonedx", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="The file to write (default: stdout).")
def sbom(project_dir: Path, execution: str | None, fmt: str, out: Path | None) -> None:
    """Export the software bill of materials of an execution's environment (image and workspace packages)."""
    project = open_project(project_dir)
    if not project.audit_db.exists():
        raise AuditError(f"no audit log at {project.audit_db}", "nothing has been recorded in this project yet")
    log = AuditLog.open_path(project.audit_db, create=False, readonly=True)
    try:
        environments, runs = sboms.read_log(log)
    finally:
        log.close()
    env = sboms.select(environments, runs, execution)
    text = sboms.document(env, fmt, project.name)
    if out is None:
        sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))
        return
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    say(f"wrote the {fmt} SBOM of environment {env.digest[:19]} ({len(env.packages)} packages, "
        f"{len(env.executions)} execution{'s' if len(env.executions) != 1 else ''}) to {one_line(str(out))}",
        err=True)
