"""The witness's protocol (c2sp.org/tlog-witness) and the cosignature format (c2sp.org/tlog-cosignature),
checked against the specs' rules: every answer code, atomic check-and-update, state that survives a
restart, and the consistency proofs the client builds from stored compact ranges."""

from __future__ import annotations

import base64
import hashlib
import http.client
import struct
import threading
from pathlib import Path

import pytest

from workbench.audit import KeyStore, merkle
from workbench.audit.checkpoint import Checkpoint
from workbench.audit.cosign import (
    COSIGNATURE_ALG,
    Cosignature,
    WitnessKey,
    cosign,
    cosigned_note,
    log_vkey,
    note_cosignatures,
    parse_vkey,
    signed_message,
)
from workbench.audit.keys import ED25519_ALG, SigningKey
from workbench.audit.merkle import consistency_proof_from_frontier
from workbench.audit.witness import check_url
from workbench.audit.witness_server import SIZE_TYPE, WitnessHTTPServer, WitnessService, make_handler

ORIGIN = "test.local/audit/protocol"


def leaves(n: int, salt: bytes = b"") -> list[bytes]:
    return [merkle.leaf_hash(salt + i.to_bytes(4, "big")) for i in range(n)]


class Log:
    """A log as the witness sees it: leaf hashes and a signing key."""

    def __init__(self, key: SigningKey | None = None, origin: str = ORIGIN):
        self.key = key or SigningKey.generate()
        self.origin = origin
        self.leaves: list[bytes] = []

    def grow(self, n: int, salt: bytes = b"") -> Checkpoint:
        self.leaves += leaves(n, salt + len(self.leaves).to_bytes(4, "big"))
        return self.checkpoint()

    def checkpoint(self) -> Checkpoint:
        return Checkpoint.sign(self.origin, len(self.leaves), merkle.root_of(self.leaves), self.key)

    def vkey(self) -> str:
        return log_vkey(self.origin, self.key.public)

    def request(self, old: int, cp: Checkpoint, proof: list[bytes] | None = None) -> bytes:
        if proof is None:
            proof = merkle.TreeLevels(self.leaves[:cp.size]).consistency_proof(old) if old else []
        lines = "".join(base64.b64encode(h).decode() + "\n" for h in proof)
        return f"old {old}\n{lines}\n{cp.to_note()}".encode()


@pytest.fixture
def service(tmp_path) -> WitnessService:
    svc = WitnessService(tmp_path / "witness", name="witness.test/w1",
                         key_store=KeyStore(tmp_path / "witness", entry="witness-test", file_name="witness-key"))
    yield svc
    svc.close()


def test_cosignature_format_follows_the_spec():
    key = SigningKey.generate()
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    # The signed message is exactly: header line, time line, the checkpoint body.
    assert signed_message(body, 1679315147) == (b"cosignature/v1\ntime 1679315147\n" + body.encode())
    cosig = cosign(key, "witness.example/w1", body, timestamp=1679315147)
    blob = base64.b64decode(cosig.line().split(" ")[2])
    assert len(blob) == 4 + 8 + 64
    assert blob[:4] == hashlib.sha256(b"witness.example/w1\n\x04" + key.public.raw).digest()[:4]
    assert struct.unpack(">Q", blob[4:12])[0] == 1679315147
    witness = WitnessKey("witness.example/w1", key.public)
    assert witness.verify(Cosignature.from_line(cosig.line()), body)
    assert not witness.verify(cosig, body.replace("20852163", "20852164"))
    # The vkey is type 0x04 and round-trips; the key ID is not the log-key (0x01) one.
    assert base64.b64decode(witness.vkey().split("+", 2)[2])[:1] == COSIGNATURE_ALG
    assert WitnessKey.parse(witness.vkey()) == witness
    assert witness.key_id != key.public.key_hash("witness.example/w1")


@pytest.mark.parametrize("text, says", [
    ("", "one line"),
    ("a+b", "three parts"),
    ("name+123+AAAA", "8 lowercase hex"),
    ("na me+12345678+AAAA", "bad key name"),
    ("name+12345678+!!!!", "not base64"),
])
def test_malformed_vkeys_are_one_line(text, says):
    with pytest.raises(ValueError) as caught:
        parse_vkey(text, COSIGNATURE_ALG)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_a_log_key_is_not_taken_for_a_witness_key():
    log = Log()
    with pytest.raises(ValueError, match="Ed25519 log key"):
        WitnessKey.parse(log.vkey())
    name, key = parse_vkey(log.vkey(), ED25519_ALG)
    assert (name, key) == (ORIGIN, log.key.public)
    tampered = log.vkey()[:-6] + ("A" if log.vkey()[-6] != "A" else "B") + log.vkey()[-5:]
    with pytest.raises(ValueError):
        parse_vkey(tampered, ED25519_ALG)


def test_urls_are_checked():
    assert check_url("http://127.0.0.1:7380/") == "http://127.0.0.1:7380"
    for bad in ("ftp://x", "http://", "http://h:99999", "http://h/p?q=1", "witness.example"):
        with pytest.raises(ValueError):
            check_url(bad)


def test_unknown_origin_is_404_and_untrusted_key_403(service):
    log = Log()
    cp = log.grow(3)
    assert service.add_checkpoint(log.request(0, cp)).status == 404
    service.allow(Log().vkey())  # another key for the same origin
    answer = service.add_checkpoint(log.request(0, cp))
    assert answer.status == 403
    # A signature by the trusted key that does not verify is 403 too.
    service.allow(log.vkey())
    sig = cp.signatures[0]
    broken = Checkpoint(cp.origin, cp.size, cp.root, (type(sig)(sig.name, sig.key_hash, bytes(64)),))
    assert service.add_checkpoint(log.request(0, broken)).status == 403
    assert service.add_checkpoint(log.request(0, cp)).status == 200


def test_the_witness_cosigns_only_consistent_extensions(service, tmp_path):
    log = Log()
    service.allow(log.vkey())
    first = log.grow(5)
    answer = service.add_checkpoint(log.request(0, first))
    assert answer.status == 200 and answer.text.startswith("\u2014 witness.test/w1 ")
    assert service.key.verify(Cosignature.from_line(answer.text), first.body())
    # A wrong old size: 409 with the size it cosigned, as text/x.tlog.size.
    second = log.grow(6)
    answer = service.add_checkpoint(log.request(0, second))
    assert (answer.status, answer.content_type, answer.text) == (409, SIZE_TYPE, "5\n")
    # The right old size and proof: cosigned.
    assert service.add_checkpoint(log.request(5, second)).status == 200
    # The same size again: a fresh cosignature; another root at that size: 409, kept as evidence.
    assert service.add_checkpoint(log.request(11, second)).status == 200
    forked = Log(log.key)
    forked.leaves = log.leaves[:10] + leaves(1, b"fork")
    assert service.add_checkpoint(forked.request(11, forked.checkpoint(), [])).status == 409
    # A rewritten history (entry 2 changed, same size and growth): its proof does not verify, 422.
    rewritten = Log(log.key)
    rewritten.leaves = list(log.leaves)
    rewritten.leaves[2] = merkle.leaf_hash(b"rewritten")
    third = rewritten.grow(4)
    answer = service.add_checkpoint(rewritten.request(11, third))
    assert answer.status == 422
    assert [e[2] for e in service.evidence()] == [409, 422]
    # Malformed requests are 400: old larger than the checkpoint, a proof from 0, garbage.
    assert service.add_checkpoint(log.request(12, second, [])).status == 400
    assert service.add_checkpoint(log.request(0, second, [bytes(32)])).status == 400
    for garbage in (b"", b"old 01\n\n", b"old x\n\n", b"old 5\nnot base64!\n\n", b"\xff\xfe",
                    b"old 5\n" + b"AAAA\n" * 2 + b"\n", b"old 5\n" + (base64.b64encode(bytes(32)) + b"\n") * 64 + b"\n",
                    b"old 0\n\nno checkpoint here\n", log.request(11, second).replace(b"\n\n\xe2", b"\n\x07\n\xe2")):
        assert service.add_checkpoint(garbage).status == 400, garbage[:40]
    # The state survives a restart, and the key with it.
    vkey = service.key.vkey()
    service.close()
    again = WitnessService(tmp_path / "witness", key_store=KeyStore(tmp_path / "witness", entry="witness-test",
                                                                     file_name="witness-key"))
    try:
        assert again.key.vkey() == vkey
        assert again.latest()[0][1] == 11
        assert again.add_checkpoint(log.request(5, second)).text == "11\n"
    finally:
        again.close()


def test_check_and_update_is_atomic(service):
    """Many requests from the same old size at once: exactly one is cosigned (tlog-witness's race)."""
    log = Log()
    service.allow(log.vkey())
    base = log.grow(4)
    assert service.add_checkpoint(log.request(0, base)).status == 200
    requests = []
    for i in range(8):
        branch = Log(log.key)
        branch.leaves = list(log.leaves)
        cp = branch.grow(1 + i, salt=bytes([i]))
        requests.append(branch.request(4, cp))
    results: list[int] = []
    threads = [threading.Thread(target=lambda body=body: results.append(service.add_checkpoint(body).status))
               for body in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [200] + [409] * 7


def test_proof_from_compact_range_equals_the_full_tree_proof():
    all_leaves = leaves(100)
    for new in range(1, 100):
        levels = merkle.TreeLevels(all_leaves[:new])
        for old in range(0, new + 1):
            frontier = merkle.CompactRange()
            frontier.extend(all_leaves[:old])
            assert consistency_proof_from_frontier(frontier, all_leaves[old:new], old, new) == levels.consistency_proof(old)


def test_http_answers(service):
    server = WitnessHTTPServer(("127.0.0.1", 0), make_handler(service))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        def ask(method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            result = response.status, response.read()
            conn.close()
            return result

        assert ask("GET", "/add-checkpoint")[0] == 405
        assert ask("POST", "/elsewhere", b"x")[0] == 404
        assert ask("POST", "/add-checkpoint", b"x" * (65 * 1024))[0] == 413
        status, text = ask("GET", "/")
        assert status == 200 and service.key.vkey().encode() in text
        log = Log()
        service.allow(log.vkey())
        status, text = ask("POST", "/add-checkpoint", log.request(0, log.grow(2)))
        assert status == 200 and text.startswith("\u2014 witness.test/w1 ".encode())
    finally:
        server.shutdown()
        server.server_close()


def test_bad_listen_address_and_name_are_one_line(tmp_path):
    from workbench.audit.witness_server import WitnessServerError, parse_listen

    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:7380") == ("::1", 7380)
    for bad in ("127.0.0.1", ":80", "h:70000", "h:x"):
        with pytest.raises(ValueError):
            parse_listen(bad)
    with pytest.raises(WitnessServerError, match="bad witness name"):
        WitnessService(tmp_path / "w2", name="has space")
    WitnessService(tmp_path / "w3", name="w3.test", key_store=KeyStore(tmp_path / "w3", entry="e3")).close()
    with pytest.raises(WitnessServerError, match="is named 'w3.test'"):
        WitnessService(tmp_path / "w3", name="other.test", key_store=KeyStore(tmp_path / "w3", entry="e3"))


def test_state_file_is_private(service):
    mode = (Path(service.folder) / "witness.db").stat().st_mode & 0o777
    assert mode == 0o600
    key_mode = service.key_store.key_file.stat().st_mode & 0o777
    assert key_mode == 0o600


def test_cosignatures_in_a_note_are_checked_against_trusted_keys():
    log = Log()
    cp = log.grow(4)
    key = SigningKey.generate()
    witness = WitnessKey("witness.test/w1", key.public)
    line = cosign(key, witness.name, cp.body()).line()
    note = cp.to_note() + line
    assert [c.status for c in note_cosignatures(note, [witness])] == ["verified"]
    assert [c.status for c in note_cosignatures(note, [])] == ["unknown"]
    # Moved onto another checkpoint of the same log, it no longer verifies.
    other = log.grow(1)
    assert [c.status for c in note_cosignatures(other.to_note() + line, [witness])] == ["bad-signature"]
    assert cosigned_note(cp, []) == cp.to_note()
