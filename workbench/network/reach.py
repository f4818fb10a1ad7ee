"""What a project's code may reach, in words: one sentence that `workbench doctor -p DIR` and the TUI's
approval dialog both print, so the analyst reads the same thing before approving code and when checking.

Reads the policy as it applies (`load_policy`: an untrusted project's rules are ignored, and the sentence
says so), names each rule's URL, methods and the secret's NAME (never its value), and a broken rule as the
one line `RuleError` gives.
"""

from __future__ import annotations

from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.findings import Finding

NOTHING = "nothing: no network (no rules in the project's [network] policy)"


def reach(project_root: Path) -> str:
    """"Code may reach: ..." without the prefix; a broken policy raises its one-line RuleError."""
    from workbench.network.rules import load_policy

    policy = load_policy(Path(project_root))
    if policy.ignored:
        return f"nothing: no network ({policy.ignored})"
    if not policy:
        return NOTHING
    parts = [rule.describe() for rule in policy.http] + [db.describe() for db in policy.databases]
    return "; ".join(parts) + "; nothing else"


def check(project_root: Path) -> Finding:
    """doctor's line for the project: ok with the sentence, warn when a rule is broken or ignored."""
    from workbench.network.rules import load_policy

    try:
        words = reach(project_root)
        ignored = load_policy(Path(project_root)).ignored
    except WorkbenchError as exc:
        return Finding("network", "warn", f"the network policy cannot be used: {exc.one_line()}",
                       "fix the rule in .workbench/config.toml, or: workbench network remove -p DIR URL")
    if ignored:
        return Finding("network", "warn", f"code may reach {words}", f"workbench trust -p {project_root}")
    return Finding("network", "ok", f"code may reach {words}")
