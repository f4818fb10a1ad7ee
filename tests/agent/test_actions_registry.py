"""The agent's tools as a registry (workbench.agent.tools): the grammar, the parser and the system prompt
are derived from the registered tools, the languages and the package managers; a plug-in tool (a `Tool` with
its own `run`) is parsed into a `ToolCall`, asked about per its approval setting, and carried out by the loop."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from workbench.agent import actions as A
from workbench.agent import prompts, tools
from workbench.agent.loop import AgentLoop, Policy

from .fakes import ScriptedLLM


def _shout(context: tools.ToolContext, call: tools.ToolCall) -> tuple[str, bool]:
    context.emit("error", {"where": "shout", "message": "seen"})  # what a tool may do: emit, read its fields
    if call.get("times") < 0:
        raise RuntimeError("negative times")
    return f"shout: {call.get('text').upper() * call.get('times')} (loud={call.get('loud')})", True


SHOUT = tools.Tool("shout", (tools.Param("text", "string", "hi"), tools.Param("times", "integer", 2),
                             tools.Param("loud", "boolean", True)), "say it louder", run=_shout)


def _with(*extra: tools.Tool) -> A.Vocabulary:
    default = A.Vocabulary.of()
    return replace(default, tools=default.tools + extra)


def test_the_built_in_tools_are_registered_like_plug_ins():
    entries = tools.TOOLS.entries()
    assert [e.name for e in entries] == ["run_code", "install", "read_file", "write_file", "save_note",
                                         "search_memory", "think", "finish"]
    assert {e.origin for e in entries} == {"built-in"}
    assert A.ACTION_NAMES == tuple(e.name for e in entries)
    assert {name: tools.TOOLS.get(name).approval for name in ("run_code", "install", "write_file", "read_file")} \
        == {"run_code": "executions", "install": "installs", "write_file": "executions", "read_file": "none"}


def test_the_grammar_takes_languages_and_managers_from_their_registries():
    from workbench.languages import LANGUAGES
    from workbench.sandbox.managers import MANAGERS

    grammar = A.GRAMMAR
    languages = next(line for line in grammar.splitlines() if line.startswith("language "))
    managers = next(line for line in grammar.splitlines() if line.startswith("manager "))
    assert all(f'"\\"{name}\\""' in languages for name in LANGUAGES.names())
    assert all(f'"\\"{name}\\""' in managers for name in MANAGERS.names())
    assert A.LANGUAGES == tuple(LANGUAGES.names()) and A.MANAGERS == tuple(MANAGERS.names())
    prompt = prompts.system_prompt()
    assert f"Package managers: {', '.join(MANAGERS.names())}." in prompt
    for tool in tools.TOOLS.items():  # one example line per tool, in the grammar's key order
        example = json.dumps({"thought": "what and why", "action": tool.name, **tool.example()})
        assert example in prompt and A.parse(example) == A.validate(json.loads(example))


def test_a_plugin_tool_is_in_the_grammar_and_prompt_and_parses_into_a_call():
    vocabulary = _with(SHOUT)
    rule = 'shout       ::= "\\"shout\\"" sp "," sp "\\"text\\"" sp ":" sp string sp "," sp "\\"times\\"" sp ":" ' \
           'sp integer sp "," sp "\\"loud\\"" sp ":" sp boolean'
    assert rule in vocabulary.grammar and "integer     ::=" in vocabulary.grammar
    assert "integer" not in A.GRAMMAR
    assert '{"thought": "what and why", "action": "shout", "text": "hi", "times": 2, "loud": true}  (say it louder)' \
        in prompts.system_prompt(vocabulary)
    raw = '{"thought": "t", "action": "shout", "text": "ab", "times": 3, "loud": false}'
    call = A.parse(raw, vocabulary)
    assert call == tools.ToolCall("t", "shout", (("text", "ab"), ("times", 3), ("loud", False)))
    assert A.parse(A.to_json(call), vocabulary) == call
    assert A.to_payload(call) == {"thought": "t", "action": "shout", "text": "ab", "times": 3, "loud": False}
    assert isinstance(A.parse(raw), A.Malformed)  # the default vocabulary does not have it


@pytest.mark.parametrize("raw, fragment", [
    ('{"thought": "t", "action": "shout", "text": "a", "times": "3", "loud": true}', '"times" must be a whole number'),
    ('{"thought": "t", "action": "shout", "text": "a", "times": true, "loud": true}', '"times" must be a whole number'),
    ('{"thought": "t", "action": "shout", "text": "", "times": 1, "loud": true}', '"text" must not be empty'),
    ('{"thought": "t", "action": "shout", "text": "a", "times": 1, "loud": 1}', '"loud" must be true or false'),
    ('{"thought": "t", "action": "shout", "text": "a", "times": 1, "loud": true, "x": 1}', "unexpected key"),
])
def test_a_plugin_tools_fields_are_validated(raw, fragment):
    result = A.parse(raw, _with(SHOUT))
    assert isinstance(result, A.Malformed) and fragment in result.error


@pytest.mark.parametrize("make, words", [
    (lambda: tools.Tool("Bad Name"), "tool name 'Bad Name'"),
    (lambda: tools.Tool("ok", (tools.Param("thought"),)), "bad field name 'thought'"),
    (lambda: tools.Tool("ok", (tools.Param("x", "float"),)), "unknown kind 'float'"),  # type: ignore[arg-type]
])
def test_a_bad_tool_cannot_be_made(make, words):
    with pytest.raises(ValueError, match=words):
        make()


def test_a_plugin_tool_without_run_or_of_the_wrong_type_is_a_problem_line():
    registry = tools.ToolRegistry("tool", None)
    registry.register(tools.Tool("lazy"), origin="plug-in wb-x (lazy = wb_x:TOOL)")
    registry.register(object(), origin="plug-in wb-y (y = wb_y:TOOL)")  # type: ignore[arg-type]
    assert registry.names() == []
    assert registry.problems == ["plug-in wb-x (lazy = wb_x:TOOL): the tool 'lazy' has no run(context, call); ignored",
                                 "plug-in wb-y (y = wb_y:TOOL): not a workbench.agent.tools.Tool (object); ignored"]


@pytest.fixture
def shout_registered():
    """A vocabulary with SHOUT, as if a plug-in had registered it (the shared registry is left alone)."""
    return _with(SHOUT)


def test_the_loop_carries_out_a_plugin_tool_and_a_failing_one_is_an_observation(fake_env, shout_registered):
    replies = ['{"thought": "t", "action": "shout", "text": "ab", "times": 2, "loud": true}',
               '{"thought": "t", "action": "shout", "text": "ab", "times": -1, "loud": true}',
               '{"thought": "t", "action": "finish", "answer": "done", "success": false}']
    llm = ScriptedLLM(replies)
    loop = AgentLoop(llm, fake_env.sandbox, emit=fake_env.emit, workspace=fake_env.workspace,
                     policy=Policy(executions="auto", installs="auto"), vocabulary=shout_registered)
    outcome = loop.run("shout")
    assert outcome.reason == "gave_up"
    first, second = llm.observations()[:2]
    assert "shout: ABAB (loud=True)" in first
    assert "shout could not be carried out: RuntimeError: negative times" in second
    assert [r.ok for r in outcome.history[:2]] == [True, False]
    assert '"action": "shout"' in llm.prompts[0][0]["content"]
    assert [e.payload["where"] for e in fake_env.of("error")] == ["shout", "shout", "shout"]


def test_a_plugin_tool_asks_for_approval_as_its_setting_says(fake_env, shout_registered):
    asked = []
    llm = ScriptedLLM(['{"thought": "t", "action": "shout", "text": "ab", "times": 1, "loud": true}',
                       '{"thought": "t", "action": "finish", "answer": "", "success": false}'])
    loop = AgentLoop(llm, fake_env.sandbox, emit=fake_env.emit, workspace=fake_env.workspace,
                     policy=Policy(executions="ask", installs="auto"), vocabulary=shout_registered,
                     approve=lambda action: asked.append(action) or False)
    loop.run("shout")
    assert [a.name for a in asked] == ["shout"]
    assert "did not approve" in llm.observations()[0]
