"""Memory in the agent loop: notes retrieved into the prompt, save_note and search_memory, the session note
at the end of every run, and runs that go on when memory fails. The store is the real `MemoryStore`
(Markdown files, the apsw/sqlite-vec/FTS5 index), full-text only so that no embedding model is needed."""

from __future__ import annotations

import json

import pytest

from workbench.agent import actions as A
from workbench.agent.loop import AgentLoop, Policy
from workbench.agent.runner import run_task
from workbench.memory import MemoryStore

from .fakes import FakeSandbox, ScriptedLLM
from .test_loop import finish, run


def save_note(title: str, text: str) -> str:
    return json.dumps({"thought": "worth keeping", "action": "save_note", "title": title, "text": text})


def search_memory(query: str) -> str:
    return json.dumps({"thought": "look it up", "action": "search_memory", "query": query})


@pytest.fixture
def store_for(tmp_path):
    opened = []

    def make(env) -> MemoryStore:
        store = MemoryStore(tmp_path / "memory", tmp_path / "memory-index.db", embedder=None, bus=env.bus,
                            session_id=env.session_id, actor="agent:test/scripted")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def make_loop(env, replies, memory, **kwargs):
    llm = ScriptedLLM(replies)
    loop = AgentLoop(llm, env.sandbox, emit=env.emit, workspace=env.workspace, memory=memory,
                     policy=Policy(executions="auto", installs="auto"), **kwargs)
    return llm, loop


def session_notes(store: MemoryStore):
    return [n for n in store.list() if "session" in n.tags]


def test_grammar_and_parser_know_the_memory_actions():
    for action in (A.SaveNote("t", "CSV format", "sales.csv uses ';'"), A.SearchMemory("t", "csv separator")):
        assert A.parse(A.to_json(action)) == action
        assert f'"\\"{action.name}\\""' in A.GRAMMAR
    assert isinstance(A.parse('{"thought": "t", "action": "save_note", "title": "x", "text": ""}'), A.Malformed)


def test_retrieved_notes_are_in_the_first_prompt(fake_env, store_for):
    store = store_for(fake_env)
    store.add("The file sales.csv uses semicolons as separators and a comma as the decimal mark.",
              title="sales.csv format", tags=["csv"])
    store.add("The office plants are watered on Mondays.", title="plants")
    llm, loop = make_loop(fake_env, [run("print(5)"), finish("5")], store)
    outcome = loop.run("Summarise sales.csv by region.")
    assert outcome.success
    task_message = llm.prompts[0][1]["content"]
    assert "semicolons as separators" in task_message and "sales.csv format" in task_message
    assert task_message.rstrip().endswith("Task: Summarise sales.csv by region.")
    assert "plants" not in task_message
    retrieved = [e for e in fake_env.of("memory.retrieved") if e.payload["purpose"] == "task"]
    assert len(retrieved) == 1 and retrieved[0].payload["results"]
    started = fake_env.kinds().index("task.started")
    assert started < fake_env.kinds().index("memory.retrieved") < fake_env.kinds().index("llm.request")


def test_retrieval_stays_within_the_token_budget(fake_env, store_for):
    store = store_for(fake_env)
    for i in range(6):
        store.add(f"Report {i}: the quarterly revenue table lives in revenue_{i}.csv. " + "detail " * 80,
                  title=f"revenue note {i}")
    llm, loop = make_loop(fake_env, [finish("", success=False)], store, memory_tokens=120)
    loop.run("Where is the quarterly revenue table?")
    block = llm.prompts[0][1]["content"].split("Task:")[0]
    assert "revenue" in block and llm.count_tokens([{"role": "user", "content": block}]) <= 120 + 8


def test_no_notes_means_the_plain_task(fake_env, store_for):
    llm, loop = make_loop(fake_env, [finish("", success=False)], store_for(fake_env))
    loop.run("Print 5.")
    assert llm.prompts[0][1]["content"] == "Task: Print 5."


def test_save_note_and_search_memory(fake_env, store_for):
    store = store_for(fake_env)
    replies = [save_note("Sales separator", "sales.csv is separated by semicolons"),
               search_memory("sales separator"), run("print(5)"), finish("5")]
    llm, loop = make_loop(fake_env, replies, store)
    outcome = loop.run("Learn about the sales file.")
    assert outcome.success, outcome
    saved = [n for n in store.list() if n.title == "Sales separator"]
    assert len(saved) == 1 and saved[0].body == "sales.csv is separated by semicolons" and "agent" in saved[0].tags
    observations = llm.observations()
    assert f"saved note {saved[0].id}" in observations[0]
    assert "Sales separator" in observations[1] and "semicolons" in observations[1]
    assert [e.payload["title"] for e in fake_env.of("memory.saved")][0] == "Sales separator"
    assert [r.ok for r in outcome.history[:2]] == [True, True]


def test_session_note_after_a_fixed_error(sandbox_env, store_for):
    store = store_for(sandbox_env)
    llm, loop = make_loop(sandbox_env, [run("print(undefined_name)"), run("print(2 + 3)"), finish("5")], store)
    outcome = loop.run("Print the sum of 2 and 3.")
    assert outcome.success
    [note] = session_notes(store)
    assert outcome.note_id == note.id
    assert set(note.tags) >= {"session", "agent", "success"}
    assert note.title.startswith("Agent session succeeded: Print the sum")
    body = note.body
    assert "Task: Print the sum of 2 and 3." in body and "Outcome: succeeded" in body and "Answer: 5" in body
    worked, failed = body.split("What worked:")[1].split("What failed:")
    assert "print(2 + 3)" in worked
    assert "print(undefined_name)" in failed and "NameError: name 'undefined_name' is not defined" in failed
    finished = sandbox_env.of("task.finished")[0]
    assert finished.payload["note"] == note.id
    saved = sandbox_env.of("memory.saved")
    assert saved and saved[-1].payload["id"] == note.id
    assert sandbox_env.kinds().index("memory.saved") < sandbox_env.kinds().index("task.finished")


def test_session_note_when_the_agent_is_stuck(fake_env, store_for):
    store = store_for(fake_env)
    bad = run("raise SystemExit('no data here')")
    llm, loop = make_loop(fake_env, [bad, bad, bad], store)
    outcome = loop.run("Find the data.")
    assert outcome.reason == "stuck"
    [note] = session_notes(store)
    assert "failure" in note.tags and "Outcome: stopped: the agent was repeating itself" in note.body
    assert "no data here" in note.body and "nothing ran successfully" in note.body
    assert note.body.count("raise SystemExit") == 1  # the same failure is listed once


class BrokenMemory:
    """Memory whose index is locked: every call fails the way apsw does."""

    def __init__(self):
        self.calls = []

    def _fail(self, name):
        self.calls.append(name)
        raise RuntimeError("BusyError: database is locked")

    def retrieve_for_task(self, *args, **kwargs):
        self._fail("retrieve")

    def add(self, *args, **kwargs):
        self._fail("add")

    def search(self, *args, **kwargs):
        self._fail("search")


def test_memory_failures_never_fail_a_run(fake_env):
    memory = BrokenMemory()
    replies = [save_note("x", "a fact"), search_memory("a fact"), run("print(5)"), finish("5")]
    llm, loop = make_loop(fake_env, replies, memory)
    outcome = loop.run("Print 5.")
    assert outcome.success and outcome.reason == "finished" and outcome.note_id is None
    assert memory.calls == ["retrieve", "add", "search", "add"]
    assert llm.prompts[0][1]["content"] == "Task: Print 5."
    errors = fake_env.of("error")
    assert len(errors) == 4 and all("database is locked" in e.payload["message"] for e in errors)
    assert [e.payload["where"] for e in errors] == ["memory", "save_note", "search_memory", "memory"]
    assert "save_note could not be carried out" in llm.observations()[0]
    assert fake_env.kinds()[-1] == "task.finished"


class SimpleSession:
    """What `run_task` reads from a WorkSession, with the fake sandbox (its events go to the test's bus)."""

    def __init__(self, project, env, settings):
        self.project, self.settings, self.bus = project, settings, env.bus
        self.session_id, self.actor = env.session_id, "user:tester"
        self.sandbox = env.sandbox

    def emit(self, kind, payload=None, actor=None):
        return self.bus.emit(kind, self.session_id, actor or self.actor, payload or {})


@pytest.fixture
def project_session(tmp_path, fake_env):
    from workbench.config import Settings
    from workbench.project import Project

    project = Project.init(tmp_path / "project")
    fake_env.sandbox = FakeSandbox(project.workspace)
    fake_env.workspace = project.workspace
    return SimpleSession(project, fake_env, Settings(agent={"max_steps": 4}))


def test_run_task_uses_the_projects_memory(project_session, fake_env, monkeypatch):
    import workbench.memory.store as store_module

    monkeypatch.setattr(store_module, "default_embedder", lambda settings=None: None)
    project = project_session.project
    with MemoryStore.for_project(project, embedder=None) as store:
        store.add("Totals in this project are always printed with two decimals.", title="totals format")
    llm = ScriptedLLM([run("print(f'{2 + 3:.2f}')"), finish("5.00")])
    outcome = run_task(project_session, "Print the totals with two decimals.", llm, approve=None)
    assert outcome.success
    assert "two decimals" in llm.prompts[0][1]["content"]
    with MemoryStore.for_project(project, embedder=None) as store:
        [note] = [n for n in store.list() if "session" in n.tags]
    assert "Answer: 5.00" in note.body
    saved = fake_env.of("memory.saved")[0]
    assert saved.actor == "agent:workbench/scripted"
    assert {e.actor for e in fake_env.events if e.kind.startswith(("task.", "llm."))} == {"agent:workbench/scripted"}


def test_run_task_goes_on_when_memory_cannot_open(project_session, fake_env, monkeypatch):
    from workbench.memory import MemoryStore as Store

    def locked(*args, **kwargs):
        raise RuntimeError("BusyError: database is locked")

    monkeypatch.setattr(Store, "for_project", classmethod(lambda cls, *a, **k: locked()))
    llm = ScriptedLLM([run("print(5)"), finish("5")])
    outcome = run_task(project_session, "Print 5.", llm, approve=None)
    assert outcome.success and outcome.note_id is None
    [error] = fake_env.of("error")
    assert error.payload["where"] == "memory" and "database is locked" in error.payload["message"]


def test_older_session_notes_roll_up_after_each_run(fake_env, store_for):
    store = store_for(fake_env)
    store.keep_session_notes = 1
    for task in ("First task.", "Second task."):
        _, loop = make_loop(fake_env, [finish("done")], store)
        assert loop.run(task).note_id  # (the run's outcome does not matter here, its note does)
    notes = store.list()
    [kept] = session_notes(store)
    assert kept.title.endswith("Second task.")
    [digest] = [n for n in notes if "digest" in n.tags]
    assert ": First task. (archived as" in digest.body
    assert [e.kind for e in fake_env.events].count("memory.rolled_up") == 1
