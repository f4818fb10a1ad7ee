"""The `workbench` command: thin wrappers that parse, call the core, and print.

Each command group lives in its own module of this package (`workbench/cli/<name>.py`) and is registered
in `COMMANDS` below. Every failure becomes one line on stderr and a non-zero exit: `WorkbenchError`s
carry their own exit code; anything unexpected exits 70 with a pointer to `--debug`.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path

import click

from workbench import __version__
from workbench.errors import WorkbenchError
from workbench.inert import one_line

# name -> "module:attribute". Imported lazily so `workbench --help` stays fast and light.
COMMANDS: dict[str, str] = {
    "init": "workbench.cli.project_cmd:init",
    "exec": "workbench.cli.exec_cmd:exec_",
    "install": "workbench.cli.exec_cmd:install",
    "run": "workbench.cli.agent_cmd:run",
    "model": "workbench.cli.model_cmd:model",
    "audit": "workbench.cli.audit_cmd:audit",
    "report": "workbench.cli.report_cmd:report",
    "export": "workbench.cli.export_cmd:export",
    "heartbeat": "workbench.cli.heartbeat_cmd:heartbeat",
    "memory": "workbench.cli.memory_cmd:memory",
    "doctor": "workbench.cli.doctor_cmd:doctor",
    "setup": "workbench.cli.doctor_cmd:setup",
    "session": "workbench.cli.exec_cmd:session",
    "trust": "workbench.cli.trust_cmd:trust",
    "witness": "workbench.cli.witness_cmd:witness",
    "mcp": "workbench.cli.mcp_cmd:mcp",
    "service": "workbench.cli.service_cmd:service",
    "network": "workbench.cli.network_cmd:network",
    "secret": "workbench.cli.network_cmd:secret",
}

SHORT_HELP: dict[str, str] = {
    "init": "Create a project (workspace/ and .workbench/).",
    "exec": "Run code in the project's sandbox and stream its output.",
    "install": "Install packages into the project (pip, r, apt).",
    "run": "Run the agent on a task, headless.",
    "model": "List model servers and GGUF files on this machine, or choose one.",
    "audit": "Verify, prove and export the signed audit log.",
    "report": "Write the PDF compliance report.",
    "export": "Export a session as a Jupyter notebook.",
    "heartbeat": "Scheduled, unattended runs.",
    "memory": "Notes the agent and you keep across sessions.",
    "doctor": "Check engine, image, model, keyring; say how to fix what is missing.",
    "setup": "Build the offline base image and check the model.",
    "session": "List or restart warm interpreter sessions.",
    "trust": "Trust a project you received, so its own settings and schedules apply.",
    "witness": "Run a cosigning witness for audit logs (C2SP tlog-witness).",
    "mcp": "Serve the project to other agents over MCP (stdio, or loopback HTTP).",
    "service": "The project's sandbox service that makes `workbench exec` fast: status, stop.",
    "network": "The APIs and databases a project's code may reach: allow, list, remove.",
    "secret": "The credential vault the network proxy injects from: set (stdin), list, rm.",
}

UNEXPECTED_EXIT = 70


class WorkbenchGroup(click.Group):
    """A group whose first argument may be a project folder instead of a command (`workbench DIR`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help without importing every command module.
        with formatter.section("Commands"):
            formatter.write_dl([(name, SHORT_HELP.get(name, "")) for name in COMMANDS])

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in COMMANDS:
            ctx.meta["workbench.project_dir"] = args.pop(0)
        return super().parse_args(ctx, args)


@click.group(cls=WorkbenchGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="workbench")
@click.option("--debug", is_flag=True, envvar="WORKBENCH_DEBUG", help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Workbench: a local LLM agent that runs code in a rootless sandbox and keeps a signed audit log.

    \b
    workbench [DIR]        open the workstation (TUI) on a project (default: this folder)
    workbench COMMAND ...  see the commands below; each has --help
    """
    ctx.obj = {"debug": debug}
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if ctx.invoked_subcommand is None:
        from workbench.cli.tui_cmd import open_tui

        open_tui(Path(ctx.meta.get("workbench.project_dir", ".")))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: run the CLI and turn failures into one line."""
    args = sys.argv[1:] if argv is None else argv
    if argv is None and args[:1] == ["exec"]:  # a console script made before the entry moved to __main__
        from workbench.service.client import try_exec

        status = try_exec(args[1:])
        if status is not None:
            sys.exit(status)
    debug = "--debug" in args or os.environ.get("WORKBENCH_DEBUG") not in (None, "", "0")
    try:
        cli.main(args=args, prog_name="workbench", standalone_mode=False)
    except WorkbenchError as exc:
        if debug:
            raise
        click.echo(f"workbench: error: {one_line(exc.one_line())}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("workbench: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"workbench: error: {one_line(' '.join(exc.format_message().split()))}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("workbench: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if debug:
            raise
        click.echo(f"workbench: internal error: {type(exc).__name__}: {one_line(exc)} (re-run with --debug for the "
                   "traceback)", err=True)
        sys.exit(UNEXPECTED_EXIT)
    sys.exit(0)
