"""Below the container: no nested user namespaces (Workbench's seccomp profile), and nothing else loosened.

Podman's default profile allows `unshare -r` (uid 0 in a new user namespace, tmpfs mounts): the kernel
surface most container escapes use. Workbench's profile refuses it in every container it makes.
"""

from __future__ import annotations

import json
import platform

import pytest

from tests.sandbox.conftest import run, still_works
from workbench.sandbox.spec import ContainerSpec

USERNS_PROBE = r"""
unshare -r true 2>/dev/null && echo 'unshare -r: allowed'
unshare -U true 2>/dev/null && echo 'unshare -U: allowed'
python3 - <<'PY'
import ctypes, os, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.unshare(0x10000000)  # os.unshare(os.CLONE_NEWUSER) on Python 3.12+
print("unshare(CLONE_NEWUSER):", "allowed" if rc == 0 else os.strerror(ctypes.get_errno()))
# what must keep working: fork, threads, subprocess (glibc's clone3 falls back to clone)
t = threading.Thread(target=lambda: None); t.start(); t.join()
print("subprocess:", subprocess.run(["echo", "ok"], capture_output=True, text=True).stdout.strip())
print("fork:", "ok" if os.fork() or os._exit(0) is None else "")
PY
"""


def check_refused(result):
    out = result.stdout.text()
    assert "allowed" not in out, out
    assert "unshare(CLONE_NEWUSER): Operation not permitted" in out
    assert "subprocess: ok" in out and "fork: ok" in out


@pytest.mark.engine
def test_one_off_code_cannot_make_a_user_namespace(sandbox):
    result, _ = run(sandbox, "shell", USERNS_PROBE)
    check_refused(result)
    still_works(sandbox)


@pytest.mark.engine
def test_warm_session_code_cannot_make_a_user_namespace(sandbox):
    result, _ = run(sandbox, "shell", USERNS_PROBE, session="userns")
    check_refused(result)


# x86_64 numbers of calls the engine's default profile denies without capabilities
DENIED = {"bpf": 321, "perf_event_open": 298, "kexec_load": 246, "swapon": 167,
          "open_by_handle_at": 304, "init_module": 175}


@pytest.mark.engine
@pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers below are x86_64's")
def test_the_default_profiles_other_denials_still_hold(sandbox):
    probe = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n" + "".join(
        f"r = libc.syscall({number}, 0, 0, 0, 0, 0)\nprint({name!r}, r, ctypes.get_errno())\n"
        for name, number in DENIED.items())
    result, _ = run(sandbox, "python", probe)
    rows = {line.split()[0].strip("'"): line.split()[1:] for line in result.stdout.text().splitlines()}
    assert set(rows) == set(DENIED), result.stdout.text()
    for name, (rc, errno) in rows.items():
        assert rc == "-1" and errno == "1", f"{name} was not denied with EPERM: {rc} {errno}"


def test_the_shipped_profile_is_the_engines_default_less_user_namespaces():
    from workbench.sandbox import seccomp

    shipped = json.loads(seccomp.profile_text())
    default_file = next((p for p in seccomp.DEFAULT_PROFILES if p.is_file()), None)
    if default_file is None:
        pytest.skip("no engine default profile on this machine (containers-common) to compare with")
    default = json.loads(default_file.read_text())
    assert shipped["defaultAction"] == default["defaultAction"]
    assert shipped.get("defaultErrnoRet") == default.get("defaultErrnoRet")

    def rules(profile, drop_filtered):
        found = set()
        for rule in profile["syscalls"]:
            if str(rule.get("comment", "")).startswith("workbench:"):
                continue
            for name in rule["names"]:
                if drop_filtered and name in seccomp.FILTERED:
                    continue
                found.add((name, rule["action"], json.dumps(rule.get("args") or [], sort_keys=True),
                           json.dumps(rule.get("includes") or {}, sort_keys=True),
                           json.dumps(rule.get("excludes") or {}, sort_keys=True), rule.get("errnoRet")))
        return found

    assert rules(shipped, False) == rules(default, True)
    ours = [r for r in shipped["syscalls"] if str(r.get("comment", "")).startswith("workbench:")]
    assert {n for r in ours for n in r["names"]} == set(seccomp.FILTERED)
    # the shipped file is what derive() makes of this machine's default: regenerate it when they part
    assert seccomp.derive(default) == shipped


@pytest.mark.engine
def test_every_container_the_engine_makes_carries_the_profile(engine_ready):
    from workbench.config import Settings
    from workbench.sandbox import BASE_IMAGE
    from workbench.sandbox.engine import connect

    engine = connect(Settings())
    try:
        container = engine.create_container(ContainerSpec(BASE_IMAGE, ("true",), network="none"))
        try:
            opts = engine.api.inspect_container(container)["HostConfig"].get("SecurityOpt") or []
        finally:
            engine.remove(container)
    finally:
        engine.close()
    assert any("seccomp" in opt and "seccomp.json" in opt or '"clone3"' in opt for opt in opts), opts
