"""The typed container spec and its one translation to docker-py (no engine needed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.sandbox import policy
from workbench.sandbox.docker_spec import docker_arguments
from workbench.sandbox.spec import ContainerSpec, Mount, Ulimit, mounts_from_binds


def docker_py_dict_before_the_typed_spec(*, image, settings, workspace, code_dir, labels, ident, limits_enforced,
                                         command):
    """What `policy.container_spec` returned (and the engine was handed) before the spec was typed, kept
    verbatim as the reference the translation must reproduce."""
    from docker.types import Ulimit as DockerUlimit

    s = settings.sandbox
    memory = policy.parse_size(s.memory)
    limits_now = policy.rlimits(settings, limits_enforced)
    ulimits = [{"Name": "nofile", "Soft": policy.NOFILE, "Hard": policy.NOFILE}] + [
        {"Name": name, "Soft": value, "Hard": value} for name, value in limits_now.items()]
    host_config = {
        "binds": {str(workspace): {"bind": policy.WORKSPACE, "mode": "rw"},
                  str(code_dir): {"bind": policy.CODE_DIR, "mode": "ro"}},
        "network_mode": "none",
        "mem_limit": memory,
        "memswap_limit": memory,
        "nano_cpus": int(s.cpus * 1e9),
        "pids_limit": policy.cgroup_pids(settings),
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={policy.TMP_SIZE},mode=1777"},
        "ulimits": [DockerUlimit(name=u["Name"], soft=u["Soft"], hard=u["Hard"]) for u in ulimits],
        "init": False,
        "auto_remove": True,
    }
    raw = {"UsernsMode": ident.userns} if ident.userns else {}
    return {"image": image, "command": command, "user": ident.user, "working_dir": policy.WORKSPACE,
            "environment": dict(policy.BASE_ENV), "labels": labels, "hostname": "sandbox",
            "network_disabled": False, "host_config": host_config, "raw_host_config": raw}


@pytest.mark.parametrize("enforced, userns", [(True, "keep-id"), (False, None),
                                              (True, "auto:uidmapping=0:100000:65536,gidmapping=0:100000:65536")])
def test_the_sandbox_spec_translates_to_what_the_engine_was_handed_before(enforced, userns):
    kwargs = dict(image="localhost/workbench-base:1", settings=Settings(sandbox={"memory": "1g", "cpus": 1.5,
                                                                                  "pids": 128}),
                  workspace=Path("/p/workspace"), code_dir=Path("/p/.workbench/sandbox"),
                  labels={policy.LABEL_PROJECT: "p1", policy.LABEL_ROLE: "exec"},
                  ident=policy.Identity("1000:1000", userns, False), limits_enforced=enforced,
                  command=["python3", "/opt/workbench/runner.py", "--init"])
    spec = policy.container_spec(**kwargs)
    assert isinstance(spec, ContainerSpec)
    assert docker_arguments(spec) == docker_py_dict_before_the_typed_spec(**kwargs)


def test_a_bare_spec_leaves_the_engine_defaults_and_no_network():
    assert docker_arguments(ContainerSpec("img", ("true",))) == {
        "image": "img", "command": ["true"], "network_disabled": False,
        "host_config": {"network_mode": "none"}, "raw_host_config": {}}


def test_a_spec_is_frozen_and_changed_copies_leave_it_alone():
    spec = ContainerSpec("img", ["sh"], env={"A": "1"}, labels={"l": "x"},
                         mounts=[Mount("/host/ws", "/workspace"), Mount("/host/code", "/opt/code", True)])
    assert spec.command == ("sh",) and isinstance(spec.mounts, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.image = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.env["B"] = "2"  # type: ignore[index]

    changed = spec.with_env(B="2").with_labels({"m": "y"}).with_mounts(Mount("/elsewhere", "/workspace"),
                                                                      Mount("/r", "/run/x"))
    assert dict(spec.env) == {"A": "1"} and dict(changed.env) == {"A": "1", "B": "2"}
    assert dict(changed.labels) == {"l": "x", "m": "y"}
    assert changed.mount_at("/workspace") == Mount("/elsewhere", "/workspace")  # a target mounted once
    assert [m.target for m in changed.mounts] == ["/opt/code", "/workspace", "/run/x"]
    assert spec.mount_at("/workspace") == Mount("/host/ws", "/workspace")
    assert changed.replace(user="1:1").user == "1:1" and spec.user == ""


def test_install_plans_keep_their_bind_shape_and_become_mounts():
    binds = {"/srv/wheels": {"bind": "/srv/wheels", "mode": "ro"}, "/tmp/eg": {"bind": "/mnt/eg", "mode": "rw"},
             "/x": {"bind": "/y", "mode": "ro,z"}}
    mounts = mounts_from_binds(binds)
    assert mounts == (Mount("/srv/wheels", "/srv/wheels", True), Mount("/tmp/eg", "/mnt/eg", False),
                      Mount("/x", "/y", True))
    spec = ContainerSpec("img", ulimits=(Ulimit("nofile", 4096, 4096),), mounts=mounts[:2], userns="keep-id")
    arguments = docker_arguments(spec)
    assert arguments["host_config"]["binds"] == {k: v for k, v in binds.items() if k != "/x"}
    assert arguments["host_config"]["ulimits"][0] == {"Name": "nofile", "Soft": 4096, "Hard": 4096}
    assert arguments["raw_host_config"] == {"UsernsMode": "keep-id"}


def test_under_gvisor_the_user_namespace_becomes_the_mapped_ids():
    from workbench.sandbox.gvisor import flatten_userns

    spec = ContainerSpec("img", user="1000:1000",
                         userns="auto:uidmapping=0:2000000000:65536,gidmapping=0:2000100000:65536")
    flat, shift = flatten_userns(spec)
    assert shift == (2000000000, 2000100000)
    assert (flat.user, flat.userns) == ("2000001000:2000101000", None)
    assert spec.userns is not None  # the caller's spec is unchanged
    same, none = flatten_userns(ContainerSpec("img", user="1000:1000", userns="keep-id"))
    assert none is None and same.userns == "keep-id"


@pytest.mark.engine
def test_the_engine_makes_the_container_the_spec_describes(engine_ready, tmp_path):
    """End to end through docker-py: what the engine records for a sandbox container is what the spec says."""
    from workbench.sandbox import BASE_IMAGE
    from workbench.sandbox.engine import connect

    settings = Settings(sandbox={"memory": "512m", "cpus": 1.0, "pids": 64})
    engine = connect(settings)
    try:
        ident = policy.identity(engine.rootless, engine.is_podman)
        spec = policy.container_spec(image=BASE_IMAGE, settings=settings, workspace=tmp_path, code_dir=tmp_path,
                                     labels={"io.workbench.conformance": "spec"}, ident=ident,
                                     limits_enforced=engine.limits_enforced, command=["sleep", "60"])
        spec = spec.replace(mounts=(Mount(str(tmp_path), policy.WORKSPACE),
                                    Mount(str(tmp_path), policy.CODE_DIR, read_only=True)))
        container = engine.create_container(spec)
        try:
            made = engine.api.inspect_container(container)
        finally:
            engine.remove(container)
    finally:
        engine.close()
    host, config = made["HostConfig"], made["Config"]
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    dropped = {c.upper().removeprefix("CAP_") for c in host["CapDrop"]}  # Podman lists what ALL took away
    assert ("ALL" in dropped or {"CHOWN", "DAC_OVERRIDE", "KILL", "NET_RAW", "SETUID", "SETGID"} <= dropped)
    assert not host.get("CapAdd")
    assert "no-new-privileges" in " ".join(host.get("SecurityOpt") or [])
    assert "/tmp" in (host.get("Tmpfs") or {})
    assert {u["Name"].lower().removeprefix("rlimit_"): u["Hard"] for u in host["Ulimits"]}["nofile"] == policy.NOFILE
    if engine.limits_enforced:
        assert host["Memory"] == 512 * 1024 ** 2 and host["PidsLimit"] == policy.cgroup_pids(settings)
    assert config["User"] == ident.user and config["WorkingDir"] == policy.WORKSPACE
    assert config["Labels"]["io.workbench.conformance"] == "spec"
    assert f"LC_ALL={policy.BASE_ENV['LC_ALL']}" in config["Env"]
    assert any(b.startswith(f"{tmp_path}:{policy.CODE_DIR}:") and "ro" in b.split(":")[2].split(",")
               for b in host["Binds"]), host["Binds"]
