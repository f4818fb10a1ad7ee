"""pip from the read-only image, installing into the workspace's venv without trusting anything in it.

The venv at /workspace/.venv is code's to write: its bin/python, a .pth or sitecustomize.py in its
site-packages, its own pip, pyvenv.cfg and pip.conf may all be traps, and the install container that runs
pip can reach the egress proxy. So the container runs the image's /usr/bin/python3 and the image's pip
(Debian's python3-pip), started so that nothing under /workspace is executed or imported; the venv is only
where pip reads metadata and writes files. managers/pip.py runs `pip_command(...)` in the container; the host
then reads back what was installed (readback.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from workbench.sandbox.policy import WORKSPACE

IMAGE_PYTHON = "/usr/bin/python3"  # the image's own interpreter: read-only, never the workspace's
VENV = f"{WORKSPACE}/.venv"

# Stage one, `IMAGE_PYTHON -I -c PIP_PREPARE MODE VENV PIP_MAIN PIP-ARGS...`. With MODE "new" it first makes the
# venv as `python3 -m venv` does, but without running its interpreter (ensurepip would: pip comes from the
# image's own wheels, installed by stage two). Then, always: put back the venv's folders, its interpreter links
# and its pyvenv.cfg as `python3 -m venv` makes them (later executions run bin/python); remove from its
# site-packages what is not metadata where pip reads metadata (pip reads every distribution's: a FIFO there
# would hang it, a symlink send it elsewhere); make an interpreter of our own in the container's /tmp (a venv
# of nothing, seeing the image's site-packages through a .pth) and exec stage two with it. pip's build
# subprocesses run `sys.executable`, so they get that interpreter too, never the workspace's; it is a venv so
# that their install layout (Debian's sysconfig differs outside one) is the one pip expects for --prefix.
PIP_PREPARE = r"""
import os, platform, shutil, site, stat, sys, venv as venvs
mode, venv, main, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
short = "python%d.%d" % sys.version_info[:2]
image_python = os.path.realpath(sys.executable)
site_packages = "%s/lib/%s/site-packages" % (venv, short)

def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)

def content(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(4096) if stat.S_ISREG(os.fstat(fd).st_mode) else None

if mode == "new":
    if os.path.islink(venv) or (os.path.lexists(venv) and not os.path.isdir(venv)):
        os.unlink(venv)
    for folder in (venv, venv + "/bin"):  # what the venv module writes must not be a FIFO (it would block)
        if os.path.isdir(folder) and not os.path.islink(folder):
            for entry in os.scandir(folder):
                if not (entry.is_file(follow_symlinks=False) or entry.is_dir(follow_symlinks=False)):
                    os.unlink(entry.path)
    venvs.EnvBuilder(with_pip=False, symlinks=True).create(venv)
for folder in (venv, venv + "/bin", venv + "/lib", venv + "/lib/" + short, site_packages):
    if os.path.islink(folder) or (os.path.lexists(folder) and not os.path.isdir(folder)):
        os.unlink(folder)
    if not os.path.isdir(folder):
        os.mkdir(folder)
for name, target in (("python3", sys.executable), ("python", "python3"), (short, "python3")):
    path = "%s/bin/%s" % (venv, name)
    if not (os.path.islink(path) and os.readlink(path) == target):
        remove(path)
        os.symlink(target, path)
config = ("home = %s\ninclude-system-site-packages = false\nversion = %s\nexecutable = %s\n"
          "command = %s -m venv %s\n" % (os.path.dirname(sys.executable), platform.python_version(),
                                          image_python, sys.executable, venv)).encode()
if content(venv + "/pyvenv.cfg") != config:
    remove(venv + "/pyvenv.cfg")
    fd = os.open(venv + "/pyvenv.cfg", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(config)
for entry in os.scandir(site_packages):
    if not entry.name.endswith((".dist-info", ".egg-info")):
        continue
    if entry.is_dir(follow_symlinks=False):
        for inner in os.scandir(entry.path):
            if not (inner.is_file(follow_symlinks=False) or inner.is_dir(follow_symlinks=False)):
                os.unlink(inner.path)
    elif not entry.is_file(follow_symlinks=False):
        os.unlink(entry.path)

own = "/tmp/workbench-pip"
os.makedirs("%s/lib/%s/site-packages" % (own, short))
os.mkdir(own + "/bin")
os.symlink(image_python, own + "/bin/python3")
with open(own + "/pyvenv.cfg", "w") as handle:
    handle.write("home = %s\ninclude-system-site-packages = false\nversion = %s\n"
                 % (os.path.dirname(image_python), platform.python_version()))
with open("%s/lib/%s/site-packages/workbench-image.pth" % (own, short), "w") as handle:
    handle.write("".join(path + "\n" for path in site.getsitepackages() if not path.startswith("/workspace")))
os.execv(own + "/bin/python3", [own + "/bin/python3", "-I", "-c", main, venv, *args])
"""

# Stage two: the image's pip, told where to install and what is there without importing from the venv.
# It relies on three names inside pip 23 (the image's python3-pip); if they move, it stops, loudly.
PIP_MAIN = """
import sys
venv, args = sys.argv[1], sys.argv[2:]
site_packages = "%s/lib/python%d.%d/site-packages" % (venv, *sys.version_info[:2])
if [path for path in sys.path if path == "/workspace" or path.startswith("/workspace/")]:
    sys.exit("workbench: the install's interpreter would import from /workspace: stopped")
# pip acts as if it ran in the venv: an older version of a package there is its to remove ...
sys.prefix = sys.exec_prefix = venv
from pip._internal import metadata
from pip._internal.operations.install import wheel
# ... and learns what is installed there from the metadata files, never by putting them on sys.path.
metadata.select_backend().Environment.default = classmethod(lambda cls: cls.from_paths([site_packages]))
# Console scripts start with the venv's interpreter, as the venv's own pip writes them.
wheel.PipScriptMaker.executable = venv + "/bin/python"
fix_script = wheel.fix_script

def venv_fix_script(path):
    here, sys.executable = sys.executable, venv + "/bin/python"
    try:
        return fix_script(path)
    finally:
        sys.executable = here

wheel.fix_script = venv_fix_script
from pip._internal.cli.main import main
sys.exit(main(["install", "--prefix", venv, "--no-warn-script-location", "-q", "--disable-pip-version-check",
               *args]))
"""

# pip reads no configuration file (its sources are all in the plan's options): above all not the venv's
# (`sys.prefix/pip.conf`, which code can write: an extra index, a find-links folder of planted sdists).
PIP_ENV = {"PIP_CONFIG_FILE": os.devnull, "PYTHONNOUSERSITE": "1"}


# What a new venv gets, as ensurepip gives it: pip and setuptools, from the image's own wheels.
IMAGE_WHEELS = "/usr/share/python-wheels"
NEW_VENV = ["--no-index", "--find-links", IMAGE_WHEELS, "pip", "setuptools"]


def pip_command(options: Sequence[str], packages: Sequence[str], *, new_venv: bool = False) -> list[str]:
    return [IMAGE_PYTHON, "-I", "-c", PIP_PREPARE, "new" if new_venv else "install", VENV, PIP_MAIN, *options,
            *packages]
