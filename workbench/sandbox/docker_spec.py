"""A `ContainerSpec` in docker-py's words: the one place the sandbox's container description becomes API arguments.

`docker_arguments(spec)` returns the keyword arguments of `APIClient.create_container`, with the host config
still as the keyword arguments of `APIClient.create_host_config` (`"host_config"`) and the fields docker-py
refuses to pass on in `"raw_host_config"` (it validates `userns_mode` to "host" only; Podman understands
`keep-id` and `auto:...` there). `DockerEngine` adds what depends on the engine (seccomp profile, SELinux
labels, gVisor) and makes the call. A field left at its default is left out, so the engine's own default holds.
"""

from __future__ import annotations

from typing import Any

from workbench.sandbox.spec import ContainerSpec, Mount


def binds(mounts: tuple[Mount, ...]) -> dict[str, dict[str, str]]:
    """docker-py's `{host: {"bind": target, "mode": "ro"|"rw"}}` (a host path mounted twice: the last wins)."""
    return {m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in mounts}


def host_options(spec: ContainerSpec) -> dict[str, Any]:
    """Keyword arguments for `APIClient.create_host_config`."""
    from docker.types import Ulimit  # imported here: `workbench --help` must not pay for docker-py

    options: dict[str, Any] = {"network_mode": spec.network}
    if spec.mounts:
        options["binds"] = binds(spec.mounts)
    for key, value in (("mem_limit", spec.memory), ("memswap_limit", spec.memory_swap),
                       ("nano_cpus", spec.nano_cpus), ("pids_limit", spec.pids), ("init", spec.init)):
        if value is not None:
            options[key] = value
    for key, names in (("cap_drop", spec.cap_drop), ("cap_add", spec.cap_add),
                       ("security_opt", spec.security_opt)):
        if names:
            options[key] = list(names)
    if spec.read_only_rootfs:
        options["read_only"] = True
    if spec.tmpfs:
        options["tmpfs"] = dict(spec.tmpfs)
    if spec.ulimits:
        options["ulimits"] = [Ulimit(name=u.name, soft=u.soft, hard=u.hard) for u in spec.ulimits]
    if spec.auto_remove:
        options["auto_remove"] = True
    return options


def docker_arguments(spec: ContainerSpec) -> dict[str, Any]:
    """`create_container` keyword arguments, plus `host_config` (for `create_host_config`) and
    `raw_host_config` (merged into the host config as is)."""
    arguments: dict[str, Any] = {"image": spec.image}
    for key, value in (("command", list(spec.command)), ("user", spec.user), ("working_dir", spec.workdir),
                       ("environment", dict(spec.env)), ("labels", dict(spec.labels)),
                       ("hostname", spec.hostname)):
        if value:
            arguments[key] = value
    arguments["network_disabled"] = False  # network_mode does it; Podman ignores this flag
    arguments["host_config"] = host_options(spec)
    arguments["raw_host_config"] = {"UsernsMode": spec.userns} if spec.userns else {}
    return arguments
