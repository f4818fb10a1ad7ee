"""The appendix of software environments: every package and version each execution ran with.

The log stores each distinct environment once (`environment.recorded`) and each `exec.finished` names its
digest; `collect` gathers both from the report's entries (before the rows are freed), gives each
environment a short label in order of first use (E1, E2, ...), and `build` lists them at the end of the
report. Each execution's facts name their environment by label and digest (`label_of`), so a reviewer can go
from a result to the exact packages behind it, and from there to `workbench audit sbom --execution ID`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from reportlab.platypus import Flowable, PageBreak

from workbench.audit.sbom import Environment, recorded
from workbench.events.environment import ECOSYSTEMS
from workbench.report import fmt
from workbench.report.flowables import LineBlock, OutlineMark
from workbench.report.styles import ACCENT, AMBER, INK, MUTED

WORDS = {"deb": "Debian packages (the image)", "pypi": "Python packages (/workspace/.venv)",
         "cran": "R packages (/workspace/.R)", "conda": "conda packages (/workspace/.conda)"}
LINES_PER_BLOCK = 400  # a long package list is split so that reportlab can break pages between blocks


@dataclass
class Environments:
    """The environments of the selection, labelled, and which one each execution ran with."""

    ordered: list[Environment] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # digest -> "E1"
    by_execution: dict[str, str] = field(default_factory=dict)  # execution id -> digest

    def label_of(self, execution_id: str) -> str:
        """`E1 sha256:0f8b...` for an execution, '' when it names none, or a note when its list is missing."""
        digest = self.by_execution.get(execution_id)
        if not digest:
            return ""
        if digest not in self.labels:
            return f"{digest[:23]}... (its package list is not in the selected entries)"
        return f"{self.labels[digest]} {digest[:23]}... (see the appendix)"


def collect(entries: Iterable[object]) -> Environments:
    found, runs = recorded(entries)
    out = Environments(by_execution=dict(runs))
    order = [digest for _, digest in runs if digest in found] + list(found)
    for digest in dict.fromkeys(order):
        out.labels[digest] = f"E{len(out.ordered) + 1}"
        out.ordered.append(found[digest])
    return out


def build(ctx: object, environments: Environments | None) -> list[Flowable]:
    """The appendix (nothing when no environment was recorded in the selection)."""
    if environments is None or not environments.ordered:
        return []
    st = ctx.styles  # type: ignore[attr-defined]
    ml = st.mono_line
    story: list[Flowable] = [PageBreak(), OutlineMark("environments", "Appendix: software environments", 0),
                             st.para("Appendix: software environments", st.h1),
                             st.para("Each environment is the sandbox image and the packages in the workspace, "
                                     "as recorded once in the log when an execution first ran with it. "
                                     "Export one as CycloneDX or SPDX with `workbench audit sbom`.", st.body)]
    for env in environments.ordered:
        label = environments.labels[env.digest]
        used = len(env.executions)
        story.append(OutlineMark(f"env-{label}", f"{label} · {len(env.packages):,} packages", 1))
        story.append(st.para(f"Environment {label}", st.h2))
        facts = [ml(f"digest     {env.digest}", INK), ml(f"image      {env.image} ({env.image_id})", MUTED),
                 ml(f"recorded   {fmt.when(env.time)} · log entry {env.seq} · {env.entry_hash}", MUTED),
                 ml(f"used by    {used:,} execution{'s' if used != 1 else ''} in the selection", MUTED)]
        facts += [ml(f"note       {note}", AMBER) for note in env.notes[:10]]
        story.append(LineBlock(facts, st.facts))
        for ecosystem in ECOSYSTEMS:
            packages = env.of(ecosystem)
            if not packages:
                continue
            lines = [ml(f"{WORDS[ecosystem]}: {len(packages):,}", ACCENT, bold=True)]
            lines += [ml(f"  {p.name:<40} {p.version}" + (f"  {p.arch}" if p.arch else ""), INK) for p in packages]
            for start in range(0, len(lines), LINES_PER_BLOCK):
                story.append(LineBlock(lines[start:start + LINES_PER_BLOCK], st.facts))
    return story
