"""`workbench memory` as a user runs it: one-line errors, audited writes, the contract search."""

from __future__ import annotations

import json
import subprocess

from workbench.memory.model import minilm_path


def run(cmd, *args, check=True):
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_add_list_search_rm_and_the_audit_log(workbench_cmd, project):
    p = str(project.root)
    out = run(workbench_cmd, "memory", "add", "-p", p, "Parquet files live in data/raw.", "--title", "Raw data",
              "--tag", "Data").stdout
    note_id = out.split()[1]
    assert (project.memory_dir / f"{note_id}.md").is_file()
    listing = run(workbench_cmd, "memory", "list", "-p", p).stdout
    assert note_id in listing and "Raw data" in listing and "[data]" in listing
    found = run(workbench_cmd, "memory", "search", "-p", p, "parquet", "-k", "3").stdout.splitlines()
    assert found[0].split()[0] == note_id
    float(found[0].split()[1])  # the score
    run(workbench_cmd, "memory", "rm", "-p", p, note_id)
    assert not (project.memory_dir / f"{note_id}.md").exists()
    exported = run(workbench_cmd, "audit", "export", "-p", p, "--format", "jsonl").stdout
    kinds = [json.loads(line).get("kind") or json.loads(line).get("event", {}).get("kind")
             for line in exported.splitlines() if line.strip()]
    assert {"memory.saved", "memory.retrieved", "memory.deleted"} <= set(kinds), kinds
    assert run(workbench_cmd, "audit", "verify", "-p", p).returncode == 0


def test_errors_are_one_line(workbench_cmd, project):
    p = str(project.root)
    for args in (["rm", "-p", p, "no-such-note"], ["rm", "-p", p, "../../etc/passwd"], ["add", "-p", p, "   "],
                 ["list", "-p", str(project.root / "missing")]):
        proc = run(workbench_cmd, "memory", *args, check=False)
        assert proc.returncode != 0
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr


def test_contract_search_prints_the_semicolon_note_first(workbench_cmd, project):
    from tests.conftest import need

    need(minilm_path().is_file(), f"the embedding model {minilm_path()} (run: bash packaging/embedding-model.sh)")
    p = str(project.root)
    run(workbench_cmd, "memory", "add", "-p", p,
        "The sales CSV uses semicolons as separators and a comma as the decimal mark.")
    run(workbench_cmd, "memory", "add", "-p", p, "The R plots look best with ggplot's minimal theme.")
    first = run(workbench_cmd, "memory", "search", "-p", p, "how is the sales file delimited").stdout.splitlines()[0]
    assert "semicolons" in first
