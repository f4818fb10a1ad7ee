"""`workbench exec`, `workbench install` and `workbench session`: the sandbox from the command line.

Thin on purpose: parse, run the code through `workbench.service.execute.run_exec` (a `WorkSession`, so the
audit log records every event; the same function the project's sandbox service runs), copy its output to
ours as it arrives, exit with its status. The code's own stdout and stderr are copied
raw (like `docker exec`); every line Workbench prints itself goes through `say`, with names made inert.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from workbench.cli.common import one_line, open_project, project_option, say
from workbench.errors import UsageError
from workbench.service.client import read_code

EXIT_CODES = """\b
Exit status: the code's own, or
  2    bad input (unknown language, missing file, -c and FILE together)
  3    the container engine cannot be reached (run packaging/setup-engine.sh)
  4    the sandbox image is missing (run workbench setup)
  124  timed out (the code was killed)
  125  the engine could not start the code (e.g. the PID limit was hit)
  137  killed for using more memory than the limit"""


class LanguageOption(click.Option):
    """`--lang`, whose help names the languages the registry has when the help is shown (built-ins,
    plug-ins and the user's `[languages]`), so importing the CLI loads no plug-in."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self.help = f"{language_choices()}; a project's [languages.NAME] adds more (see: workbench doctor)."
        return super().get_help_record(ctx)


def language_choices() -> str:
    """The languages as a sentence: the registry's, with the user's own config's (never a project's)."""
    from workbench import languages
    from workbench.config import load_settings
    from workbench.errors import ConfigError

    try:
        settings = load_settings(None)
    except ConfigError:  # a broken user config is doctor's to report; the help still lists the rest
        settings = None
    return languages.choices_text(settings)


class ManagerChoice(click.Choice):
    """The package managers' registry as a click choice, read when first needed (help, parsing)."""

    def __init__(self) -> None:
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        from workbench.agent.actions import manager_names

        return manager_names()

    @choices.setter
    def choices(self, value: object) -> None:  # click's __init__ sets it; the registry is the truth
        pass


class ManagerOption(click.Option):
    """`--manager`, whose help says what each registered package manager installs into."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from workbench.agent.actions import manager_descriptions

        self.help = "; ".join(f"{name}: {text}" if text else name for name, text in manager_descriptions()) + "."
        return super().get_help_record(ctx)


class TerminalOutput:
    """`workbench.service.execute.Output` for this process: the code's bytes raw, our lines through `say`."""

    def stdout(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    def stderr(self, data: bytes) -> None:
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()

    def say(self, text: str) -> None:
        say(text, err=True)


@click.command("exec", epilog=EXIT_CODES)
@project_option
@click.option("--lang", "-l", "language", required=True, metavar="LANG", cls=LanguageOption)
@click.option("-c", "code", metavar="CODE", help="The code to run.")
@click.option("--timeout", type=float, metavar="SECONDS", help="Wall-clock limit (default: sandbox.timeout).")
@click.option("--session", metavar="NAME", help="Run in the warm session NAME: variables persist between runs.")
@click.option("--runtime", type=click.Choice(["runc", "runsc"]), default=None,
              help="runsc: run under gVisor (default: sandbox.runtime; runc is the engine's default).")
@click.option("--db", "database", metavar="DBNAME",
              help="With --lang sql: run it on this PostgreSQL database of the project's network policy.")
@click.option("--no-service", is_flag=True,
              help="Run in this process, not through the project's sandbox service (also: WORKBENCH_SERVICE=0).")
@click.argument("file", required=False, type=click.Path(path_type=Path, allow_dash=True))
def exec_(project_dir: Path, language: str, code: str | None, timeout: float | None, session: str | None,
          runtime: str | None, database: str | None, no_service: bool, file: Path | None) -> None:
    """Run code in the project's sandbox, streaming its stdout and stderr to ours as it runs.

    From a shell, the call goes to the project's sandbox service (started on first use, ended after a few
    idle minutes; see `workbench service`), which keeps the engine connection and a running container
    between calls. Plain calls take that path before this command is even parsed; this one runs in-process.
    """
    from workbench.service.execute import run_exec

    source = read_code(code, file)
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    project = open_project(project_dir)
    settings = project.settings({"sandbox": {"runtime": runtime}} if runtime else None)
    sys.exit(run_exec(project, settings, language, source, timeout=timeout, session=session,
                      output=TerminalOutput(), database=database))


@click.command(epilog=EXIT_CODES)
@project_option
@click.option("--manager", "-m", type=ManagerChoice(), required=True, cls=ManagerOption)
@click.argument("packages", nargs=-1, required=True)
def install(project_dir: Path, manager: str, packages: tuple[str, ...]) -> None:
    """Install packages into the project so later runs (and sessions) can use them.

    Exits 0 when installed, 1 when the package manager failed, 5 when a configured source ([install]
    in the settings) is missing or does not answer, 2/3/4 as for exec.
    Installs run in their own container with no network; when a configured source is a URL, its only way
    out is Workbench's proxy, which reaches the configured sources' host:port and nothing else (what it
    refused is printed and audited). Code you run never has a network at all.
    """
    from workbench.sandbox.errors import InstallFailed
    from workbench.session import WorkSession

    project = open_project(project_dir)
    with WorkSession.open(project, details={"command": "install"}) as work:
        # The package manager's progress lines are the install container's output: one line each, inert.
        result = work.sandbox.install(manager, list(packages), progress=lambda line: say(one_line(line), err=True))  # type: ignore[arg-type]
    for package in result.installed:
        say(f"installed {one_line(package.name)} {one_line(package.version)} ({one_line(package.manager)})")
    if result.refused:
        say(f"workbench: the install was refused {', '.join(map(one_line, result.refused))}: only downloads from "
            "the install sources are let through (add a host to [install] allow_hosts if it should be one)",
            err=True)
    for failure in result.unreachable:
        say(f"workbench: the install could not reach {one_line(failure)}", err=True)
    if not result.ok:
        tail = " | ".join(result.output.strip().splitlines()[-3:])
        raise InstallFailed(f"{manager} install failed (exit {result.exit_code}): {tail}")


@click.group()
def session() -> None:
    """List or restart warm interpreter sessions (`workbench exec --session NAME`)."""


@session.command("list")
@project_option
def session_list(project_dir: Path) -> None:
    """Show the project's warm sessions: name, language, state."""
    from workbench.sandbox.kernels import list_sessions

    project = open_project(project_dir)
    rows = list_sessions(project)
    if not rows:
        say("no warm sessions")
    for row in rows:  # each field on its line: a name holding a newline or an escape cannot forge a row
        say(f"{one_line(row['name']):<16} {one_line(row['language']):<8} {one_line(row['state']):<8} "
            f"executions={one_line(row['executions'])} idle={row['idle']:.0f}s")


@session.command("restart")
@project_option
@click.option("--lang", "-l", "language", default=None, help="Only this language's interpreter.")
@click.argument("name")
def session_restart(project_dir: Path, language: str | None, name: str) -> None:
    """Restart the warm session NAME: its interpreters start fresh (their state is lost)."""
    from workbench.sandbox.kernels import restart_session

    project = open_project(project_dir)
    count = restart_session(project, name, language)
    if not count:
        raise UsageError(f"no warm session named {name!r}", "see: workbench session list")
    say(f"restarted {count} interpreter(s) of session {one_line(name)!r}")


@session.command("stop")
@project_option
def session_stop(project_dir: Path) -> None:
    """Stop the project's warm-session container now (it also stops by itself when idle)."""
    from workbench.sandbox.kernels import stop_sessions

    project = open_project(project_dir)
    say("stopped" if stop_sessions(project) else "no warm sessions were running")
