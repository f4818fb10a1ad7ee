"""The agent's file tools against traps left in the workspace (planted here on the host, with the fake
sandbox; tests/security/test_host_files.py plants the same from inside the real sandbox)."""

from __future__ import annotations

import json
import os

import pytest

from workbench.agent.loop import AgentLoop, Policy
from workbench.agent.prompts import size_words

from .fakes import ScriptedLLM

SECRET = "host-secret-9b2f"


def act(action: str, **fields) -> str:
    return json.dumps({"thought": "t", "action": action, **fields})


def drive(env, *replies: str) -> ScriptedLLM:
    llm = ScriptedLLM([*replies, act("finish", answer="", success=False)])
    AgentLoop(llm, env.sandbox, emit=env.emit, workspace=env.workspace,
              policy=Policy(executions="auto", installs="auto")).run("x")
    return llm


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


@pytest.mark.timeout(30)
def test_special_files_are_named_not_opened(fake_env, secret):
    ws = fake_env.workspace
    os.mkfifo(ws / "pipe")
    (ws / "zero").symlink_to("/dev/zero")
    (ws / "dir").symlink_to(secret.parent)
    llm = drive(fake_env, act("read_file", path="pipe"), act("read_file", path="zero"),
                act("read_file", path="dir/secret.txt"))
    seen = llm.observations()
    assert "read_file: pipe is a FIFO: not opened" in seen[0]
    assert "read_file: zero is a symlink to /dev/zero: not followed" in seen[1]
    assert f"read_file: dir is a symlink to {secret.parent}: not followed" in seen[2]
    assert SECRET not in json.dumps(llm.prompts)
    refused = fake_env.of("file.refused")
    assert [(e.payload["step"], e.payload["kind"] if "kind" in e.payload else None) for e in refused] == [
        (1, "fifo"), (2, "symlink"), (3, None)]


def test_a_large_file_is_read_up_to_the_cap_and_says_so(fake_env):
    with open(fake_env.workspace / "sparse.bin", "wb") as handle:
        handle.write(b"start")
        handle.truncate(3 * 1024**3 + 200 * 1024**2)  # 3.2 GB, sparse
    llm = drive(fake_env, act("read_file", path="sparse.bin"))
    first = llm.observations()[0]
    assert "only the first 64 KB of 3.2 GB were read; first 6,000 characters shown" in first
    assert "start" in first


def test_write_replaces_a_symlink_and_ignores_a_planted_temporary(fake_env, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    ws = fake_env.workspace
    (ws / ".a.txt.wb-tmp").symlink_to(victim)
    (ws / "b.txt").symlink_to(victim)
    (ws / "up").symlink_to(tmp_path)
    llm = drive(fake_env, act("write_file", path="a.txt", content="A"), act("write_file", path="b.txt", content="B"),
                act("write_file", path="up/victim.txt", content="C"), act("write_file", path="/workspace", content="D"))
    seen = llm.observations()
    assert victim.read_text() == "original"
    assert (ws / "a.txt").read_text() == "A" and (ws / ".a.txt.wb-tmp").is_symlink()
    assert (ws / "b.txt").read_text() == "B" and not (ws / "b.txt").is_symlink()
    assert f"(b.txt is a symlink to {victim}: replaced by a regular file, not followed)" in seen[1]
    assert f"write_file: up is a symlink to {tmp_path}: not followed" in seen[2]
    assert "the workspace folder itself" in seen[3]


def test_paths_outside_are_refused_before_anything_is_opened(fake_env):
    llm = drive(fake_env, act("read_file", path="/etc/passwd"), act("read_file", path="a/../../x"),
                act("read_file", path="/workspacex/y"))
    assert all("is outside /workspace" in text for text in llm.observations()[:3])
    assert not fake_env.of("file.refused")  # nothing was looked at: the path itself was wrong


def test_listing_is_bounded_and_never_enters_a_symlinked_folder(fake_env, secret):
    ws = fake_env.workspace
    (ws / "a").mkdir()
    for i in range(300):
        (ws / "a" / f"f{i:03}").touch()
    (ws / "link").symlink_to(secret.parent)
    (ws / ".hidden").mkdir()
    (ws / ".hidden" / "x").touch()
    llm = drive(fake_env, act("read_file", path="/workspace/"))
    first = llm.observations()[0]
    assert f"files in /workspace: a/, link -> {secret.parent}, a/f000" in first
    assert "possibly others (the listing stops after 200 entries)" in first
    assert "secret.txt" not in first and ".hidden" not in first


def test_a_text_file_still_reads_whole(fake_env):
    (fake_env.workspace / "t.txt").write_text("hello\n")
    llm = drive(fake_env, act("read_file", path="t.txt"))
    assert llm.observations()[0].endswith("read_file t.txt (6 bytes):\nhello\n")


def test_size_words():
    assert [size_words(n) for n in (1, 812, 65536, 3 * 1024**3 + 200 * 1024**2, 8 * 1024**3, 150 * 1024**2)] == [
        "1 byte", "812 bytes", "64 KB", "3.2 GB", "8 GB", "150 MB"]
