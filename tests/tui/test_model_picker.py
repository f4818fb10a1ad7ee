"""The model picker (palette → "Choose model") and the status bar's demo-model warning."""

from __future__ import annotations

import threading
import tomllib
from pathlib import Path

from workbench.agent.discovery import Choice, Discovery, ServerProbe, find_all
from workbench.doctor import DoctorReport
from workbench.findings import Finding
from workbench.project import Project
from workbench.tui.services import Services

from .conftest import SIZE, aio, settle
from .fakes import GOOD_REPORT, FakeServices

SERVER = Choice(spec="ollama:qwen2.5-coder:7b", name="qwen2.5-coder:7b", where="http://127.0.0.1:11434",
                source="ollama", size=4_683_087_332, quantization="Q4_K_M", endpoint="http://127.0.0.1:11434/v1",
                endpoint_model="qwen2.5-coder:7b")
DEMO = Choice(spec="SmolLM2-135M-Instruct", name="SmolLM2-135M-Instruct", where="/models/SmolLM2.gguf",
              source="bundled", size=98_400_000, quantization="Q4_1", path=Path("/models/SmolLM2.gguf"))
BROKEN = Choice(spec="bad", name="bad", where="/models/bad.gguf", source="models_dir", path=Path("/x"),
                problem="not a GGUF model")


class PickerServices(FakeServices):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.used: list[Choice] = []
        self.threads: list[threading.Thread] = []

    def model_choices(self, settings):
        self.threads.append(threading.current_thread())
        from workbench.agent.discovery import LMSTUDIO

        note = ServerProbe(LMSTUDIO, "http://127.0.0.1:1234", True, note="skipped LM Studio at "
                           "http://127.0.0.1:1234: its answer is not JSON")
        return Discovery(servers=[note], choices=[SERVER, BROKEN, DEMO])

    def use_model_choice(self, project, choice):
        self.used.append(choice)


def _text(widget) -> str:
    return str(widget.render())


@aio
async def test_choose_model_lists_what_was_found_and_uses_the_pick(make):
    services = PickerServices()
    app = make(services=services)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lambda: app.screen.session is not None)
        app.screen.action_switch_model()
        await settle(pilot, lambda: app.screen.__class__.__name__ == "ModelChooser")
        assert services.threads and services.threads[0] is not threading.main_thread()  # never the event loop
        options = app.screen.query_one("#model-choices")
        rows = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert len(rows) == 2  # the unreadable file is not offered
        assert "qwen2.5-coder:7b" in rows[0] and "4.7 GB" in rows[0] and "Q4_K_M" in rows[0]
        assert "ollama" in rows[0] and "http://127.0.0.1:11434" in rows[0]
        assert "demo model, cannot do real tasks" in rows[1] and "/models/SmolLM2.gguf" in rows[1]
        notes = [_text(label) for label in app.screen.query(".model-note")]
        assert notes == ["skipped LM Studio at http://127.0.0.1:1234: its answer is not JSON"]
        options.focus()
        options.highlighted = 0
        await pilot.press("enter")
        await settle(pilot, lambda: services.used)
        assert services.used == [SERVER]


@aio
async def test_the_status_bar_says_the_demo_model_cannot_do_real_tasks(make):
    demo = DoctorReport(tuple(
        Finding("model", "warn", "SmolLM2-135M-Instruct.Q4_1.gguf (98 MB): the bundled demo model",
                "it cannot do real tasks: ...") if f.name == "model" else f for f in GOOD_REPORT.findings))
    app = make(services=FakeServices(report=demo))
    async with app.run_test(size=SIZE) as pilot:
        bar = app.screen.query_one("StatusBar")
        await settle(pilot, lambda: bar.demo_model)
        text = bar.render()
        assert "SmolLM2-135M-Instruct.Q4_1.gguf · demo model, cannot do real tasks" in text.plain
        assert "Choose model" in text.plain
        assert any("yellow" in str(span.style) for span in text.spans)
    good = make(services=FakeServices())
    async with good.run_test(size=SIZE) as pilot:
        bar = good.screen.query_one("StatusBar")
        await settle(pilot, lambda: "SmolLM2" in bar.model)
        assert not bar.demo_model and "demo" not in bar.render().plain


def test_the_real_services_write_a_servers_choice_into_the_project(tmp_path):
    project = Project.init(tmp_path / "p")
    Services().use_model_choice(project, SERVER)
    model = tomllib.loads(project.config_file.read_text())["model"]
    assert model == {"provider": "openai", "endpoint": "http://127.0.0.1:11434/v1",
                     "endpoint_model": "qwen2.5-coder:7b"}
    assert project.settings().model.provider == "openai"  # still trusted: the choice applies
    Services().use_model_choice(project, Choice(spec="x", name="x", where="/m/x.gguf", source="path",
                                                path=Path("/m/x.gguf")))
    model = tomllib.loads(project.config_file.read_text())["model"]
    assert model["provider"] == "llama_cpp" and model["path"] == "/m/x.gguf"


def test_the_real_model_choices_answer_quickly_with_nothing_listening(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("HOME", str(tmp_path))
    started = time.monotonic()
    found = find_all(tmp_path / "none", targets=[])
    assert time.monotonic() - started < 2 and all(c.source == "bundled" for c in found.choices)


def test_the_real_services_find_a_fake_ollama(tmp_path, monkeypatch):
    from tests.agent.test_discovery import OLLAMA_TAGS, fake_server
    from workbench.config import Settings

    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    with fake_server({"/api/tags": OLLAMA_TAGS}) as (url, _):
        monkeypatch.setenv("OLLAMA_HOST", url.removeprefix("http://"))
        found = Services().model_choices(Settings())
    first = found.choices[0]
    assert (first.spec, first.endpoint, first.quantization) == ("ollama:qwen2.5-coder:7b", url + "/v1", "Q4_K_M")
