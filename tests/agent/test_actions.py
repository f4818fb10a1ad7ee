"""The action schema: parsing, validation, and the strict grammar's text."""

from __future__ import annotations

import json

import pytest

from workbench.agent import actions as A


def test_every_action_round_trips():
    samples = [A.Think("t"), A.RunCode("t", "python", "print(1)\nprint(2)"), A.Install("t", "pip", ("a", "b")),
               A.ReadFile("t", "x.csv"), A.WriteFile("t", "y.txt", ""), A.Finish("t", "42", True)]
    for action in samples:
        assert A.parse(A.to_json(action)) == action


@pytest.mark.parametrize("raw, fragment", [
    ("", "empty"),
    ("{", "not valid JSON"),
    ("[1]", "one JSON object"),
    ('{"thought": "t", "action": "fly"}', '"action" must be one of'),
    ('{"thought": "t", "action": "run_code", "language": "cobol", "code": "x"}', '"language" must be one of'),
    ('{"thought": "t", "action": "run_code", "language": "python", "code": ""}', '"code" must not be empty'),
    ('{"thought": "t", "action": "install", "manager": "pip", "packages": []}', "non-empty list"),
    ('{"thought": "t", "action": "finish", "answer": "a", "success": "yes"}', "true or false"),
    ('{"thought": "t", "action": "think", "extra": 1}', "unexpected key"),
    ('{"thought": "t", "action": "think"} trailing', "extra text"),
    ('{"thought": 3, "action": "think"}', '"thought" must be a string'),
])
def test_malformed_says_why(raw, fragment):
    result = A.parse(raw)
    assert isinstance(result, A.Malformed) and fragment in result.error and result.raw == raw


def test_tolerates_fences_and_chatter():
    body = '{"thought": "t", "action": "think"}'
    assert A.parse(f"```json\n{body}\n```") == A.Think("t")
    assert A.parse(f"Sure! {body}") == A.Think("t")


def test_signature_ignores_the_thought():
    one = A.RunCode("first", "python", "print(1)")
    two = A.RunCode("second", "python", "print(1)")
    assert A.signature(one) == A.signature(two) != A.signature(A.RunCode("x", "python", "print(2)"))


def test_grammar_is_strict_about_strings():
    grammar = A.GRAMMAR
    assert 'char        ::= [^"\\\\\\x00-\\x1F\\x7F]' in grammar  # no raw control characters (newlines)
    assert "ws ::=" not in grammar and 'sp          ::= " "?' in grammar
    for name in A.ACTION_NAMES:
        assert f'"\\"{name}\\""' in grammar
    rules = {line.split("::=")[0].strip() for line in grammar.splitlines() if "::=" in line}
    used = set()
    for line in grammar.splitlines():
        if "::=" in line:
            body = line.split("::=", 1)[1]
            body = "".join(part for i, part in enumerate(body.split('"')) if i % 2 == 0)  # drop literals
            used.update(word for word in body.replace("(", " ").replace(")", " ").replace("|", " ").split()
                        if word[:1].isalpha() and "-" in word or word.isalpha())
    assert used <= rules, used - rules


def test_payload_is_json_able():
    payload = A.to_payload(A.Install("t", "pip", ("x",)))
    assert json.loads(json.dumps(payload)) == {"thought": "t", "action": "install", "manager": "pip",
                                               "packages": ["x"]}


def test_the_model_is_told_what_an_install_was_refused():
    from workbench.agent.prompts import install_observation
    from workbench.sandbox.types import InstalledPackage, InstallResult

    result = InstallResult(manager="pip", requested=("wbevil",), installed=(InstalledPackage("wbevil", "1.0", "pip"),),
                           exit_code=0, output="", duration=1.0, reached=("mirror.lan:443",),
                           refused=("evil.example:443",), unreachable=("cdn.lan:443: could not connect: timed out",))
    text = install_observation(result)
    assert "succeeded" in text and "refused (not an install source" in text and "evil.example:443" in text
    assert "unreachable: cdn.lan:443: could not connect" in text
    failed = install_observation(InstallResult(manager="r", requested=("x",), installed=(), exit_code=1,
                                               output="boom", duration=0.1))
    assert "FAILED" in failed and "refused" not in failed and failed.endswith("boom")
