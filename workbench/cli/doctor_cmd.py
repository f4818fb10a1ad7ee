"""`workbench doctor` and `workbench setup`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from workbench.cli.common import one_line, say
from workbench.config import load_settings
from workbench.doctor import project_findings, run_doctor
from workbench.errors import EngineUnavailable
from workbench.project import STATE_DIR


def _settings_for(project_dir: Path):
    """The settings doctor and setup use: a project's through its trust (an untrusted project's config
    only tightens, so a received folder cannot point doctor at another engine), else the user's."""
    root = project_dir.absolute()
    if not (root / STATE_DIR).is_dir():
        return load_settings(None), root
    from workbench.project import Project

    return Project.open(root).settings(), root


@click.command()
@click.option("-p", "--project", "project_dir", type=click.Path(path_type=Path), default=Path("."),
              help="Read this project's settings too (default: current folder, when it is a project).")
def doctor(project_dir: Path) -> None:
    """Check the engine, isolation, limits, base image, model, keyring and disk; say how to fix what fails.

    Exits 0 when nothing fails (warnings allowed), 1 otherwise.
    """
    settings, root = _settings_for(project_dir)
    report = run_doctor(settings, root)
    for finding in [*report.findings, *project_findings(root), *_network(root)]:
        say(finding.line())
    sys.exit(0 if report.ok else 1)


def _network(root: Path) -> list:
    """What the project's code may reach (the approval dialog's words); nothing when `root` is no project."""
    from workbench.doctor import guarded
    from workbench.network import reach
    from workbench.project import STATE_DIR

    return guarded("network", lambda: reach.check(root)) if (root / STATE_DIR).is_dir() else []


SETUP_ENGINE = Path(__file__).resolve().parents[2] / "packaging" / "setup-engine.sh"  # in a source checkout


def _setup_runsc() -> None:
    """gVisor: install Debian's runsc (as root, with apt) and register it with the engine
    (packaging/setup-engine.sh --runsc starts its Podman service); otherwise say the commands."""
    import os
    import shutil
    import subprocess

    from workbench.sandbox import gvisor

    try:
        say(f"gvisor: runsc present ({gvisor.find_runsc(gvisor.RUNSC)})")
    except EngineUnavailable:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise EngineUnavailable("gVisor's runsc is not installed and only root can install it with apt",
                                    "sudo apt-get install -y runsc, then run workbench setup --runsc again") from None
        say("gvisor: installing runsc (apt-get install runsc)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        with open("/tmp/workbench-apt.log", "ab") as log:
            done = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "runsc"],
                                  stdout=log, stderr=log, env=env).returncode == 0
            if not done:  # package lists missing or too old to know runsc
                done = (subprocess.run(["apt-get", "update", "-qq"], stdout=log, stderr=log, env=env).returncode == 0
                        and subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "runsc"],
                                           stdout=log, stderr=log, env=env).returncode == 0)
        if not done:
            raise EngineUnavailable("apt-get install runsc failed", "see /tmp/workbench-apt.log") from None
        say(f"gvisor: installed {gvisor.find_runsc(gvisor.RUNSC)}")
    if not SETUP_ENGINE.is_file():
        say("gvisor: register it with the engine: bash packaging/setup-engine.sh --runsc (from the Workbench "
            "sources or the offline bundle)")
        return
    if subprocess.run(["bash", str(SETUP_ENGINE), "--runsc"]).returncode != 0:
        raise EngineUnavailable("registering runsc with the engine failed (see the lines above)",
                                f"bash {SETUP_ENGINE} --runsc")
    say("gvisor: ready: [sandbox] runtime = \"runsc\" (or workbench exec --runtime runsc) runs code under it")


@click.command()
@click.option("-p", "--project", "project_dir", type=click.Path(path_type=Path), default=Path("."),
              help="Use this project's settings (engine, image).")
@click.option("--runsc", "with_runsc", is_flag=True,
              help="Also install gVisor's runsc (as root, with apt) and register it with the engine.")
def setup(project_dir: Path, with_runsc: bool) -> None:
    """Build the offline base image (cached, so a second run takes seconds) and check the model."""
    if with_runsc:
        _setup_runsc()
    settings, _root = _settings_for(project_dir)
    from workbench.sandbox import image

    started = time.monotonic()

    def progress(message: str) -> None:
        say(f"  [{time.monotonic() - started:5.1f}s] {one_line(message)}")

    say("base image:")
    try:
        image.ensure_base_image(settings, progress)
    except EngineUnavailable:
        raise
    from workbench.doctor import CHECKS, guarded

    model = guarded("model", lambda: CHECKS.get("model").run(settings))  # doctor's model check, alone
    for finding in model:
        say(finding.line())
    say(f"setup done in {time.monotonic() - started:.1f}s")
    if any(finding.status == "fail" for finding in model):
        sys.exit(1)
