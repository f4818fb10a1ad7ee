"""Print `name==version` for every distribution Workbench needs at run time, as installed in this venv.

The bundle must carry what was tested, but only what runs: the development venv also holds the test and
lint tools (nbconvert, import-linter, pytest ...), whose newest releases may need a newer Python than the
offline laptop's. So walk Workbench's own requirements (no extras) through the installed distributions'
metadata, evaluating markers for this interpreter, and list that closure. Run with the venv's python:
    python packaging/runtime-requirements.py [ROOT_DISTRIBUTION] [--exclude NAME ...]
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

from packaging.requirements import Requirement


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str) -> dict[str, str]:
    found: dict[str, str] = {}
    todo = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a marker-less optional dependency that is not installed: pip did not need it either
        key = canonical(dist.metadata["Name"])
        first = key not in found
        found[key] = dist.version
        for line in dist.requires or ():
            requirement = Requirement(line)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""}))
            if wanted and (first or extras):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return found


def main(argv: list[str]) -> int:
    root = argv[0] if argv and not argv[0].startswith("--") else "workbench"
    excluded = {canonical(n) for i, n in enumerate(argv) if i and argv[i - 1] == "--exclude"}
    for name, version in sorted(closure(root).items()):
        if name != canonical(root) and name not in excluded:
            print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
