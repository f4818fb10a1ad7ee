"""What the model reads: the system prompt, the task, and observations worded the same way every time.

Observations are the agent's eyes, so they say plainly what happened (exit code, time, which stream was
cut and by how much, files changed, artifacts) and never hide a truncation. Wording is stable and the
history is append-only, so consecutive prompts share their prefix and llama.cpp reuses its KV cache.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from workbench.agent.actions import Vocabulary
from workbench.inert import one_line
from workbench.sandbox.types import ExecutionResult, InstallResult, StreamSummary

# Characters of each stream shown to the model: the head (what started) and the tail (where it failed).
STREAM_HEAD = 600
STREAM_TAIL = 1400
FILE_CHARS = 6000

PREAMBLE = """You are Workbench, a careful data analyst agent. You solve the task by running code \
in a sandbox and reading the results. The sandbox is Linux with no network; the current directory is \
/workspace, where the user's files are and where files you write persist.

Reply with exactly one JSON object per turn, one of:"""

RULES = """Rules:
- Compute with code and print what you need to see; never guess a result.
- After each action you get an observation: exit code, output, files changed. If it failed, read the \
error and fix the code.
- Finish only after an execution printed the result, and put that result in "answer".
- If the task cannot be done, finish with "success": false and say why.
- Notes from earlier sessions may come with the task; check them against the data before relying on \
them. Save a note only for something a later session should know (a file's format, what failed and why).
- Inside JSON strings write a newline as \\n and a quote as \\"."""


def system_prompt(vocabulary: Vocabulary | None = None) -> str:
    """The system prompt for `vocabulary` (default: the registries' tools, languages and managers): one
    example line per tool, in the grammar's key order, then the choices its fields take."""
    vocabulary = vocabulary or Vocabulary.of()
    examples = []
    for tool in vocabulary.tools:
        line = json.dumps({"thought": "what and why", "action": tool.name, **tool.example()}, ensure_ascii=False)
        examples.append(f"{line}  ({one_line(tool.description)})" if tool.description else line)
    choices = f"Languages: {', '.join(vocabulary.languages)}. Package managers: {', '.join(vocabulary.managers)}."
    return "\n".join([PREAMBLE, *examples, "", choices, RULES])


def __getattr__(name: str) -> Any:  # SYSTEM_PROMPT: the defaults' prompt, made when asked
    if name == "SYSTEM_PROMPT":
        return system_prompt()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def task_message(task: str, notes: str = "") -> str:
    """The task, after the notes memory retrieved for it (so the task is what the model reads last)."""
    if notes.strip():
        return f"{notes.strip()}\n\nTask: {task.strip()}"
    return f"Task: {task.strip()}"


def observation_message(step: int, text: str) -> str:
    return f"Observation (step {step}):\n{text}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def stream_text(name: str, summary: StreamSummary) -> str:
    """One stream for the model: head and tail when long, and always saying what was left out."""
    text = summary.text()
    if not text.strip() and summary.total_bytes == 0:
        return f"{name}: (empty)"
    notes = []
    if len(text) > STREAM_HEAD + STREAM_TAIL:
        omitted = len(text) - STREAM_HEAD - STREAM_TAIL
        text = f"{text[:STREAM_HEAD]}\n[... {_plural(omitted, 'character')} omitted ...]\n{text[-STREAM_TAIL:]}"
        notes.append(f"shortened: first {STREAM_HEAD:,} and last {STREAM_TAIL:,} characters shown")
    if summary.truncated:
        notes.append(f"the sandbox kept only the first {_plural(len(summary.kept), 'byte')} of "
                     f"{summary.total_bytes:,}")
    label = f"{name} ({'; '.join(notes)})" if notes else name
    return f"{label}:\n{text.rstrip()}"


def _kind_words(change) -> str:
    if change.kind == "symlink":
        return f" (a symlink to {one_line(change.target or '?')}, not followed)"
    if change.kind != "file":
        return f" (a {change.kind}, never opened)"
    return f" ({change.size:,} bytes)" if change.size is not None else ""


def execution_observation(result: ExecutionResult, hints: Sequence[str] = ()) -> str:
    if result.timed_out or result.killed_by == "timeout":
        status = f"TIMED OUT after {result.duration:.1f} s and was stopped"
    elif result.killed_by == "oom":
        status = f"KILLED: out of memory after {result.duration:.1f} s"
    elif result.killed_by == "user":
        status = "STOPPED by the user"
    else:
        code = "unknown" if result.exit_code is None else str(result.exit_code)
        verdict = "succeeded" if result.ok else "FAILED"
        status = f"{verdict}: exit code {code} after {result.duration:.2f} s"
    lines = [f"run_code ({result.language}) {status}", stream_text("stdout", result.stdout),
             stream_text("stderr", result.stderr)]
    if result.files:
        # a name is the code's: one line each, so a newline in one cannot forge a line of the observation
        shown = ", ".join(f"{f.change} {one_line(f.path)}" + _kind_words(f) for f in result.files[:20])
        more = f" and {len(result.files) - 20} more" if len(result.files) > 20 else ""
        lines.append(f"files changed: {shown}{more}")
    if result.artifacts:
        lines.append("artifacts: " + ", ".join(f"{one_line(a.path)} ({a.mime})" for a in result.artifacts[:20]))
    if result.state_lost:
        lines.append("note: the interpreter restarted; variables from earlier steps are gone")
    lines.extend(f"note: {note}" for note in result.notes)
    lines.extend(f"hint: {hint}" for hint in hints)
    return "\n".join(lines)


def install_observation(result: InstallResult) -> str:
    packages = " ".join(result.requested)
    egress = ""
    if result.refused:
        egress += (f"\nrefused (not an install source; the user can add it to [install] allow_hosts): "
                   f"{', '.join(result.refused)}")
    if result.unreachable:
        egress += f"\nunreachable: {'; '.join(result.unreachable)}"
    if result.ok:
        versions = ", ".join(f"{p.name} {p.version}" for p in result.installed) or "nothing new"
        return (f"install ({result.manager}) {packages} succeeded in {result.duration:.1f} s: {versions}. "
                f"You can use it now.{egress}")
    tail = result.output.strip()[-STREAM_TAIL:]
    return f"install ({result.manager}) {packages} FAILED: exit code {result.exit_code}{egress}\n{tail}"


def size_words(count: int) -> str:
    """A byte count as a person reads it: `812 bytes`, `64 KB`, `3.2 GB` (powers of 1,024)."""
    if count < 1024:
        return _plural(count, "byte")
    value = float(count)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1024
        if value < 1024 or unit == "TB":
            break
    return f"{value:.0f} {unit}" if value >= 100 or value == int(value) else f"{value:.1f} {unit}"


def file_observation(path: str, content: str, size: int, *, read_limit: int | None = None) -> str:
    """A file for the model. `read_limit`: set when only that many bytes were read (the file is longer),
    so the model is told how much of how much it sees and never takes a part for the whole."""
    name = one_line(path)
    if read_limit is not None:
        shown = min(len(content), FILE_CHARS)
        return (f"read_file {name} ({size:,} bytes; only the first {size_words(read_limit)} of "
                f"{size_words(size)} were read; first {shown:,} characters shown):\n"
                f"{content[:FILE_CHARS]}\n[... rest not read ...]")
    if len(content) > FILE_CHARS:
        return (f"read_file {name} ({size:,} bytes; first {FILE_CHARS:,} characters shown):\n"
                f"{content[:FILE_CHARS]}\n[... rest omitted ...]")
    return f"read_file {name} ({size:,} bytes):\n{content}"


def refused_observation(tool: str, reason: str) -> str:
    """One line for a path the file tools would not touch; `reason` is `workbench.confined`'s words,
    e.g. "x is a symlink to /etc/shadow: not followed"."""
    return f"{tool}: {one_line(reason)}"


def written_observation(path: str, size: int, replaced: str = "") -> str:
    """`replaced`: what stood at the name before, when it was not a file (a symlink is replaced, never
    written through), e.g. "x is a symlink to /etc/passwd"."""
    text = f"write_file {one_line(path)}: wrote {size:,} bytes"
    if replaced:
        text += f" ({one_line(replaced)}: replaced by a regular file, not followed)"
    return text


def note_saved_observation(note_id: str, title: str) -> str:
    return f"save_note: saved note {note_id} ({title}); later sessions will see it when it is relevant"


def memory_search_observation(query: str, hits: Sequence[tuple[str, str, str]], limit: int = 1200) -> str:
    """`hits`: (id, title, body) best first; bodies are cut so the whole answer stays under `limit` chars."""
    if not hits:
        return f"search_memory {query!r}: no notes match"
    lines = [f"search_memory {query!r}: {_plural(len(hits), 'note')}, best first"]
    share = max(120, limit // len(hits))
    for note_id, title, body in hits:
        text = " ".join(body.split())
        if len(text) > share:
            text = text[:share].rsplit(" ", 1)[0] + " …"
        lines.append(f"- {title} ({note_id}): {text}")
    return "\n".join(lines)


def listing(paths: Sequence[str], limit: int = 40, *, where: str = "/workspace", capped: int = 0) -> str:
    """Names for the model, `limit` at most. `capped`: the walk stopped after that many entries, so the
    total is unknown and the text says so rather than giving a count that would be wrong."""
    if not paths:
        return f"{where} is empty" if where != "/workspace" else "the workspace is empty"
    shown = ", ".join(paths[:limit])
    text = f"files in {one_line(where)}: {shown}"
    if capped:
        more = f"{len(paths) - limit:,} more and " if len(paths) > limit else ""
        return text + f" and {more}possibly others (the listing stops after {capped:,} entries)"
    return text + (f" and {len(paths) - limit} more" if len(paths) > limit else "")
