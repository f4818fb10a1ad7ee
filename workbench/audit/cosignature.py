"""The witness cosignature format (C2SP tlog-cosignature, Ed25519 ``cosignature/v1``): keys, lines, signing.

A cosignature is a signed-note signature line a witness adds to one of our checkpoints::

    — <witness name> base64(key ID || u64 big-endian timestamp || Ed25519 signature)

The key ID is SHA-256(<name> || "\\n" || 0x04 || public key)[:4] (0x04: the timestamped Ed25519
cosignature type), and the signature covers ``cosignature/v1\\ntime <timestamp>\\n`` followed by the
checkpoint's note text (its body lines, without signature lines). A witness's public key travels as a vkey
``<name>+<hex key ID>+base64(0x04 || key)``.

Pure format, no storage: the witness registry, the witness client and server and the log's stored
cosignatures (`workbench.audit.cosign`) all build on it.
"""

from __future__ import annotations

import binascii
import hashlib
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from workbench.audit.checkpoint import SIGNATURE_PREFIX
from workbench.audit.ed25519 import ED25519_ALG, PublicKey, SigningKey, b64, unb64

COSIGNATURE_ALG = b"\x04"  # signed-note signature type: timestamped Ed25519 cosignature
COSIGNATURE_HEADER = "cosignature/v1\n"
MAX_TIMESTAMP = 2**63 - 1
FUTURE_SLACK_S = 600  # a witness clock this far ahead of ours is still believed


# --- keys ----------------------------------------------------------------------------------------
def key_id(name: str, alg: bytes, raw: bytes) -> bytes:
    """The signed-note key ID: SHA-256(name || "\\n" || type || key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + alg + raw).digest()[:4]


def check_key_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise ValueError(f"bad key name {name[:60]!r}: it must be non-empty, without spaces or '+'")


def parse_vkey(text: str, alg: bytes) -> tuple[str, PublicKey]:
    """(name, key) of a signed-note vkey of signature type `alg`; ValueError says in one line what is wrong."""
    line = text.strip()
    if not line or "\n" in line:
        raise ValueError("a verifier key is one line: <name>+<8 hex digits>+<base64 key>")
    parts = line.split("+", 2)  # a name has no '+'; base64 may
    if len(parts) != 3:
        raise ValueError("a verifier key has three parts joined by '+': <name>+<8 hex digits>+<base64 key>")
    name, hash_hex, data = parts
    check_key_name(name)
    if len(hash_hex) != 8 or any(c not in "0123456789abcdef" for c in hash_hex):
        raise ValueError(f"the key ID {hash_hex[:20]!r} is not 8 lowercase hex digits")
    try:
        raw = unb64(data)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise ValueError("the key is not base64") from exc
    if raw[:1] != alg:
        kind = {ED25519_ALG: "an Ed25519 log key (type 0x01)",
                COSIGNATURE_ALG: "a witness cosignature key (type 0x04)"}.get(raw[:1], f"type {raw[:1].hex() or 'none'}")
        want = "0x04 (a witness key)" if alg == COSIGNATURE_ALG else "0x01 (an Ed25519 log key)"
        raise ValueError(f"the key is {kind}, not of type {want}")
    if len(raw) != 33:
        raise ValueError(f"the key is {len(raw) - 1} bytes, an Ed25519 key is 32")
    if key_id(name, alg, raw[1:]).hex() != hash_hex:
        raise ValueError("the key ID does not match the name and key (a wrong or altered vkey)")
    return name, PublicKey(raw[1:])


@dataclass(frozen=True)
class WitnessKey:
    """A witness: its name and Ed25519 cosigning key."""

    name: str
    public: PublicKey

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, COSIGNATURE_ALG, self.public.raw)

    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{b64(COSIGNATURE_ALG + self.public.raw)}"

    @classmethod
    def parse(cls, text: str) -> WitnessKey:
        name, key = parse_vkey(text, COSIGNATURE_ALG)
        return cls(name, key)

    def verify(self, cosignature: Cosignature, body: str) -> bool:
        if cosignature.name != self.name or cosignature.key_id != self.key_id:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public.raw).verify(
                cosignature.signature, signed_message(body, cosignature.timestamp))
            return True
        except (InvalidSignature, ValueError):
            return False


def log_vkey(origin: str, key: PublicKey) -> str:
    """The vkey a witness operator allows for this log: Workbench names its log key after the origin."""
    return key.vkey(origin)


# --- cosignatures --------------------------------------------------------------------------------
def signed_message(body: str, timestamp: int) -> bytes:
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{body}".encode()


@dataclass(frozen=True)
class Cosignature:
    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    def line(self) -> str:
        blob = self.key_id + struct.pack(">Q", self.timestamp) + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {b64(blob)}\n"

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(min(self.timestamp, 253402300799), UTC)

    @classmethod
    def from_line(cls, line: str) -> Cosignature:
        """Parse one note signature line as a cosignature; ValueError if it is not one."""
        text = line.removesuffix("\n")
        if not text.startswith(SIGNATURE_PREFIX) or "\n" in text:
            raise ValueError("a signature line starts with an em dash and a space")
        parts = text[len(SIGNATURE_PREFIX):].split(" ")
        if len(parts) != 2:
            raise ValueError("a signature line is '— <name> <base64>'")
        name, data = parts
        check_key_name(name)
        try:
            blob = unb64(data)
        except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
            raise ValueError("the signature is not base64") from exc
        if len(blob) != 4 + 8 + 64:
            raise ValueError(f"a cosignature is 76 bytes (key ID, timestamp, signature), not {len(blob)}")
        (timestamp,) = struct.unpack(">Q", blob[4:12])
        if timestamp > MAX_TIMESTAMP:
            raise ValueError("the cosignature's timestamp is out of range")
        return cls(name, blob[:4], timestamp, blob[12:])


def cosign(key: SigningKey, name: str, body: str, timestamp: int | None = None) -> Cosignature:
    """A witness's cosignature on a checkpoint note body (the witness server signs with this)."""
    when = int(time.time()) if timestamp is None else timestamp
    signature = key.sign(signed_message(body, when))
    return Cosignature(name, key_id(name, COSIGNATURE_ALG, key.public.raw), when, signature)


def note_body(note: str) -> str:
    """The note text of a signed note (up to and including the newline before the last blank line)."""
    cut = note.rfind("\n\n")
    if cut < 0:
        raise ValueError("the note has no blank line before its signatures")
    return note[:cut + 1]


def signature_lines(text: str) -> list[str]:
    """The note signature lines of a witness's answer (each ends with a newline)."""
    if not text.endswith("\n"):
        raise ValueError("the answer does not end with a newline")
    return [line + "\n" for line in text.split("\n")[:-1]]
