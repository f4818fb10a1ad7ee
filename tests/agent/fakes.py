"""Test doubles for the agent: a scripted model and a small sandbox that implements `SandboxAPI`.

`FakeSandbox` runs the *test's own* scripted Python in a host subprocess (never model output: the
scripted model only says what the test wrote), in the test's temporary workspace, so the loop sees real
exit codes and tracebacks. Installs write a stub module, so "install then use" behaves as it would in
the real sandbox. The same scenarios run against the real sandbox when it is available (conftest).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from workbench.agent.llm import Completion, Message
from workbench.sandbox.types import (
    ExecutionResult,
    FileChange,
    InstalledPackage,
    InstallResult,
    OutputChunk,
    SandboxInfo,
    StreamSummary,
)


def summary(data: bytes, cap: int = 1 << 20) -> StreamSummary:
    return StreamSummary(total_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), kept=data[:cap],
                         truncated=len(data) > cap)


def _snapshot(root: Path) -> dict[str, tuple[int, float]]:
    files = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if path.is_file() and not relative.parts[0].startswith("."):
            stat = path.stat()
            files[relative.as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return files


class FakeExecution:
    def __init__(self, sandbox: FakeSandbox, language: str, code: str, timeout: float | None):
        self.execution_id = uuid.uuid4().hex[:12]
        self._sandbox = sandbox
        self._language = language
        self._code = code
        self._timeout = timeout
        self._result: ExecutionResult | None = None
        self._chunks: list[OutputChunk] = []
        self.cancelled = threading.Event()

    def _run(self) -> None:
        if self._result is not None:
            return
        root = self._sandbox.workspace
        before = _snapshot(root)
        started = time.monotonic()
        timed_out = False
        if self._language != "python":
            out, err, code = b"", f"fake sandbox runs python only, not {self._language}\n".encode(), 2
        else:
            env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(self._sandbox.site),
                   "PYTHONDONTWRITEBYTECODE": "1"}
            try:
                proc = subprocess.run([sys.executable, "-c", self._code], cwd=root, env=env, capture_output=True,
                                      timeout=self._timeout or 30)
                out, err, code = proc.stdout, proc.stderr, proc.returncode
            except subprocess.TimeoutExpired as exc:
                out, err, code, timed_out = exc.stdout or b"", exc.stderr or b"", None, True
        after = _snapshot(root)
        changes = [FileChange(p, "created" if p not in before else "modified",
                              hashlib.sha256((root / p).read_bytes()).hexdigest(), after[p][0])
                   for p in sorted(after) if before.get(p) != after[p]]
        changes += [FileChange(p, "deleted", None, None) for p in sorted(set(before) - set(after))]
        now = time.monotonic()
        self._chunks = [OutputChunk(name, data, now) for name, data in (("stdout", out), ("stderr", err)) if data]
        cap = self._sandbox.output_cap
        self._result = ExecutionResult(
            execution_id=self.execution_id, language=self._language, code=self._code, exit_code=code,
            duration=now - started, timed_out=timed_out, killed_by="timeout" if timed_out else None,
            stdout=summary(out, cap), stderr=summary(err, cap), files=tuple(changes))
        self._sandbox.executions.append(self._result)

    def __iter__(self) -> Iterator[OutputChunk]:
        self._run()
        yield from self._chunks

    def result(self) -> ExecutionResult:
        self._run()
        assert self._result is not None
        return self._result

    def cancel(self) -> None:
        self.cancelled.set()


class FakeSandbox:
    """Implements `workbench.sandbox.types.SandboxAPI` for the loop's tests."""

    def __init__(self, workspace: Path, output_cap: int = 1 << 20):
        self.workspace = workspace
        self.site = workspace / ".fake-site"
        self.site.mkdir(parents=True, exist_ok=True)
        self.output_cap = output_cap
        self.executions: list[ExecutionResult] = []
        self.installs: list[tuple[str, tuple[str, ...]]] = []
        self.closed = False

    @property
    def info(self) -> SandboxInfo:
        return SandboxInfo(engine="fake", endpoint="in-process", rootless=True, limits_enforced=False,
                           image="none")

    def execute(self, language: str, code: str, *, timeout: float | None = None,
                session: str | None = None) -> FakeExecution:
        return FakeExecution(self, language, code, timeout)

    def install(self, manager, packages: Sequence[str]) -> InstallResult:
        self.installs.append((manager, tuple(packages)))
        installed = []
        for package in packages:
            module = package.split("==")[0].replace("-", "_").lower()
            (self.site / f"{module}.py").write_text("def dumps(value):\n    return repr(value)\n")
            installed.append(InstalledPackage(package, "1.0", manager))
        return InstallResult(manager=manager, requested=tuple(packages), installed=tuple(installed), exit_code=0,
                             output="installed", duration=0.01)

    def close(self) -> None:
        self.closed = True


class ScriptedLLM:
    """Replies from a list, in order, and remembers every prompt it was given."""

    supports_grammar = True

    def __init__(self, replies: Sequence[str], *, context_length: int = 8192, name: str = "scripted"):
        self.replies = list(replies)
        self.prompts: list[list[Message]] = []
        self.context_length = context_length
        self.name = name
        self.resets = 0

    def complete(self, messages: Sequence[Message], *, max_tokens: int, grammar: str | None = None,
                 stop: threading.Event | None = None) -> Completion:
        self.prompts.append([dict(m) for m in messages])
        text = self.replies.pop(0) if self.replies else \
            '{"thought": "script ended", "action": "finish", "answer": "", "success": false}'
        prompt = self.count_tokens(messages)
        return Completion(text=text, prompt_tokens=prompt, evaluated_tokens=prompt,
                          completion_tokens=max(1, len(text) // 4), seconds=0.001,
                          finish_reason="cancelled" if stop is not None and stop.is_set() else "stop")

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return sum(len(m["content"]) // 4 + 4 for m in messages)

    def reset(self) -> None:
        self.resets += 1

    def close(self) -> None:
        pass

    def observations(self) -> list[str]:
        """The observation messages of the last prompt, in order."""
        last = self.prompts[-1] if self.prompts else []
        return [m["content"] for m in last if m["role"] == "user" and m["content"].startswith("Observation")]
