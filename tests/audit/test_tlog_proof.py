"""`workbench audit prove --out FILE` writes a C2SP tlog-proof@v1 file; the vkey travels in C2SP form.

The file is checked here against the spec's grammar and RFC 6962 by hand (independently of
`workbench.audit.proof`), by `workbench audit verify --proof`, and tampered variants must fail.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from conftest import event

from workbench.audit import AuditLog, KeyStore, PublicKey
from workbench.audit.proof import MAGIC, ProofFormatError, TlogProof, check_proof
from workbench.cli import main


def cli(capsys, *args):
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    out, err = capsys.readouterr()
    return stop.value.code, out, err


def node(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + a + b).digest()


def root_from_path(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """RFC 9162 2.1.3.2, written out again so the test does not lean on workbench.audit.merkle."""
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0
    return r


@pytest.fixture
def proved(project, tmp_path, capsys):
    log = AuditLog.open(project)
    log.checkpoint_every = 4
    for i in range(11):
        log.append(event(i))
    log.close()
    out = tmp_path / "entry7.tlog-proof"
    code, said, err = cli(capsys, "audit", "prove", "-p", str(project.root), "7", "--out", str(out))
    assert code == 0, err
    return project, out, said


def test_the_file_follows_the_c2sp_grammar_and_proves_the_entry(proved):
    project, out, said = proved
    text = out.read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1" == MAGIC
    assert lines[1].startswith("extra ") and lines[2] == "index 7"
    blank = lines.index("")
    path = [base64.b64decode(line, validate=True) for line in lines[3:blank]]
    assert path and all(len(h) == 32 for h in path)
    note = "\n".join(lines[blank + 1:])
    origin, size, root_b64 = note.split("\n")[:3]
    assert size == "11" and note.split("\n")[3] == "" and note.split("\n")[4].startswith("\u2014 " + origin + " ")
    extra = json.loads(base64.b64decode(lines[1][6:]))
    leaf = hashlib.sha256(b"\x00" + extra["leaf_data"].encode()).digest()
    assert root_from_path(leaf, 7, 11, path) == base64.b64decode(root_b64)
    header = json.loads(extra["leaf_data"])
    assert header["seq"] == 7 and header["kind"] == "exec.finished"
    # The verifier key in C2SP form, computed again by hand: name+hex(SHA-256(name\n\x01key)[:4])+base64(\x01key).
    raw = KeyStore().signing_key().public.raw
    keyhash = hashlib.sha256(origin.encode() + b"\n\x01" + raw).digest()[:4]
    encoded = base64.b64encode(b"\x01" + raw).decode()
    vkey = f"{origin}+{keyhash.hex()}+{encoded}"
    assert extra["vkey"] == vkey and f"verifier key {vkey}" in said


def test_verify_proof_accepts_it_and_rejects_tampered_variants(proved, tmp_path, capsys):
    project, out, _said = proved
    extra_line = out.read_text(encoding="utf-8").split("\n")[1]
    vkey = json.loads(base64.b64decode(extra_line[6:]))["vkey"]
    keyfile = tmp_path / "log.vkey"
    keyfile.write_text(vkey + "\n", encoding="utf-8")
    code, said, err = cli(capsys, "audit", "verify", "--proof", str(out), "--pubkey", str(keyfile))
    assert code == 0, err
    assert said.startswith("ok: entry 7 (exec.finished, session s1") and "of size 11" in said
    text = out.read_text(encoding="utf-8")
    lines = text.split("\n")
    variants = {
        "moved": text.replace("index 7\n", "index 6\n"),
        "path": text.replace(lines[3], base64.b64encode(bytes(32)).decode(), 1),
        "root": text.replace(text.split("\n\n")[1].split("\n")[2], base64.b64encode(bytes(32)).decode(), 1),
        "entry": text.replace(extra_line, "extra " + base64.b64encode(json.dumps(dict(
            json.loads(base64.b64decode(extra_line[6:])),
            leaf_data=json.loads(base64.b64decode(extra_line[6:]))["leaf_data"].replace('"seq":7', '"seq":8')
        )).encode()).decode()),
    }
    for name, changed in variants.items():
        bad = tmp_path / f"{name}.tlog-proof"
        bad.write_text(changed, encoding="utf-8")
        code, said, err = cli(capsys, "audit", "verify", "--proof", str(bad), "--pubkey", str(keyfile))
        assert code == 1 and said == "" and err.count("\n") == 1, (name, err)
    other = tmp_path / "other.vkey"
    other.write_text(PublicKey(bytes(range(32))).vkey("x.example/log") + "\n", encoding="utf-8")
    code, _said, err = cli(capsys, "audit", "verify", "--proof", str(out), "--pubkey", str(other))
    assert code == 1 and "unknown key" in err


@pytest.mark.parametrize("text, says", [
    ("", "does not start with"),
    ("c2sp.org/tlog-proof@v2\nindex 1\n\nx\n", "does not start with"),
    ("c2sp.org/tlog-proof@v1\nindex 01\n\nlog\n1\nAAAA\n\n", "not a decimal number"),
    ("c2sp.org/tlog-proof@v1\nindex 1\nnot base64!\n\nlog\n", "not a base64 hash"),
    ("c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\nlog\n", "not a 32-byte hash"),
    ("c2sp.org/tlog-proof@v1\nindex 1\n", "no empty line"),
    ("c2sp.org/tlog-proof@v1\n\nlog\n", "no index line"),
    ("c2sp.org/tlog-proof@v1\nindex 0\n\nlog\n1\n", "checkpoint does not parse"),
])
def test_malformed_proofs_are_one_line_errors(text, says, tmp_path, capsys):
    with pytest.raises(ProofFormatError, match=says):
        TlogProof.parse(text)
    path = tmp_path / "bad.tlog-proof"
    path.write_text(text, encoding="utf-8")
    code, said, err = cli(capsys, "audit", "verify", "--proof", str(path))
    assert code == 2 and said == "" and err.count("\n") == 1 and says in err


def test_the_export_carries_the_vkey(project, tmp_path, capsys):
    log = AuditLog.open(project)
    for i in range(3):
        log.append(event(i))
    log.close()
    out = tmp_path / "e.jsonl"
    assert cli(capsys, "audit", "export", "-p", str(project.root), "--out", str(out))[0] == 0
    head = json.loads(out.read_text(encoding="utf-8").split("\n")[0])
    key = KeyStore().signing_key().public
    assert head["vkey"] == key.vkey(head["origin"]) and head["keys"][0]["vkey"] == head["vkey"]
    assert PublicKey.parse(head["vkey"]) == key


def test_a_proof_of_a_one_entry_log_has_no_path(project, tmp_path):
    log = AuditLog.open(project)
    log.append(event(0))
    log.close()
    from workbench.audit.proof import make_proof
    from workbench.audit.store import AuditStore

    store = AuditStore(project.audit_db, create=False, readonly=True)
    try:
        proof = make_proof(store, 0)
    finally:
        store.close()
    again = TlogProof.parse(proof.to_text())
    assert again.path == () and again.index == 0 and "\nindex 0\n\n" in proof.to_text()
    assert check_proof(again, [KeyStore().signing_key().public]).ok
