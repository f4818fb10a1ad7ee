"""The sandbox: code runs in a local container, never on the host (see DESIGN.md, security layers).

    from workbench.sandbox import Sandbox
    with Sandbox.open(project) as sandbox:
        execution = sandbox.execute("python", "print(1)")
        for chunk in execution: ...
        result = execution.result()

Modules: `engine` (the engine seam and `probe` for doctor: it takes a typed `spec.ContainerSpec`;
`docker_engine` implements it over docker-py, `fake_engine` in-process for tests), `image` (the offline base
image), `policy` (isolation settings), `sandbox` (containers), `lifecycle` (every execution: events, snapshot,
notes, result) over a transport, `oneoff` (the engine's exec API) or `warm` (the session container's
runner, kept by `kernels`, reached through `runner_client`), `execution` (live chunks, results, events),
`install` (the install step) with `managers` (pip / R / apt / conda and plug-ins' package managers, one
registry); `container/` holds the code that runs inside the containers (runner, kernels, relay).
"""

from workbench.sandbox.engine import EngineProbe, probe
from workbench.sandbox.image import BASE_IMAGE, ensure_base_image, image_present
from workbench.sandbox.sandbox import Sandbox

__all__ = ["BASE_IMAGE", "EngineProbe", "Sandbox", "ensure_base_image", "image_present", "probe"]
