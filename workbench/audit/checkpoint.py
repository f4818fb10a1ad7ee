"""Checkpoints: a signed statement "log <origin> had <size> entries with tree root <root>".

The text form is the C2SP tlog-checkpoint carried in a C2SP signed note, so tools built for
transparency logs can read it::

    <origin>\\n
    <size, decimal>\\n
    <base64 of the 32-byte root hash>\\n
    \\n
    — <key name> <base64(4-byte key hash || 64-byte Ed25519 signature)>\\n

The signature covers the note text: the three body lines including the final newline. The key hash is
SHA-256(name || "\\n" || 0x01 || public key)[:4] (see `keys.PublicKey.key_hash`); Workbench names its
key after the log's origin.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field

from workbench.audit.errors import CheckpointFormatError
from workbench.audit.keys import PublicKey, SigningKey, b64, unb64

SIGNATURE_PREFIX = "\u2014 "  # em dash and a space


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_hash: bytes
    signature: bytes

    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {b64(self.key_hash + self.signature)}\n"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint of the log; `id` and `time` are set for checkpoints stored in a log."""

    origin: str
    size: int
    root: bytes
    signatures: tuple[NoteSignature, ...] = ()
    extensions: tuple[str, ...] = ()
    id: int | None = field(default=None, compare=False)
    time: str | None = field(default=None, compare=False)

    @property
    def root_hex(self) -> str:
        return self.root.hex()

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{b64(self.root)}\n" + "".join(f"{e}\n" for e in self.extensions)

    def to_note(self) -> str:
        """The C2SP signed-note text."""
        return self.body() + "\n" + "".join(s.line() for s in self.signatures)

    def label(self) -> str:
        """How messages name this checkpoint."""
        where = f"checkpoint #{self.id}" if self.id is not None else "checkpoint"
        return f"{where} (size {self.size})"

    @classmethod
    def sign(cls, origin: str, size: int, root: bytes, key: SigningKey) -> Checkpoint:
        check_origin(origin)
        unsigned = cls(origin, size, root)
        signature = key.sign(unsigned.body().encode("utf-8"))
        return cls(origin, size, root, (NoteSignature(origin, key.public.key_hash(origin), signature),))

    def verify(self, keys: list[PublicKey]) -> tuple[PublicKey | None, str]:
        """The first of `keys` whose valid signature is on this note, or None and what is wrong."""
        if not self.signatures:
            return None, "it has no signature"
        message = self.body().encode("utf-8")
        unknown = []
        for sig in self.signatures:
            for key in keys:
                if key.key_hash(sig.name) == sig.key_hash:
                    if key.verify(sig.signature, message):
                        return key, ""
                    return None, f"its signature by key {key.fingerprint[:16]} does not verify"
            unknown.append(sig.key_hash.hex())
        return None, f"it is signed by an unknown key (key hash {', '.join(unknown)})"

    @classmethod
    def from_note(cls, text: str) -> Checkpoint:
        """Parse a C2SP signed note holding a checkpoint; raises CheckpointFormatError."""
        if not text.endswith("\n"):
            raise CheckpointFormatError("the checkpoint text does not end with a newline")
        cut = text.rfind("\n\n")
        if cut < 0:
            raise CheckpointFormatError("the checkpoint text has no blank line before its signatures")
        body, sig_text = text[:cut + 1], text[cut + 2:]
        lines = body.split("\n")[:-1]
        if len(lines) < 3:
            raise CheckpointFormatError("a checkpoint needs an origin, a size and a root hash line")
        origin, size_text, root_text, *extensions = lines
        if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
            raise CheckpointFormatError(f"the checkpoint size {size_text!r} is not a decimal number")
        try:
            root = unb64(root_text)
        except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
            raise CheckpointFormatError("the checkpoint root hash is not base64") from exc
        if len(root) != 32:
            raise CheckpointFormatError("the checkpoint root hash is not 32 bytes")
        signatures = []
        for line in sig_text.split("\n")[:-1]:
            if not line.startswith(SIGNATURE_PREFIX):
                raise CheckpointFormatError(f"bad signature line {line[:40]!r}")
            parts = line[len(SIGNATURE_PREFIX):].split(" ")
            if len(parts) != 2:
                raise CheckpointFormatError(f"bad signature line {line[:40]!r}")
            try:
                blob = unb64(parts[1])
            except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
                raise CheckpointFormatError("a signature is not base64") from exc
            if len(blob) < 5:
                raise CheckpointFormatError("a signature is too short")
            signatures.append(NoteSignature(parts[0], blob[:4], blob[4:]))
        if not signatures:
            raise CheckpointFormatError("the checkpoint has no signature line")
        return cls(origin, int(size_text), root, tuple(signatures), tuple(extensions))


def check_origin(origin: str) -> None:
    if not origin or any(c.isspace() for c in origin) or "+" in origin:
        raise CheckpointFormatError(f"bad log origin {origin!r}: it must be non-empty, without spaces or '+'")
