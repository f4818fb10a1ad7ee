"""Ed25519 keys of the audit log and their public forms.

`SigningKey` signs checkpoints; `PublicKey` verifies them and reads the forms a reviewer holds. The
*fingerprint* is the hex SHA-256 of the raw 32-byte public key; the *vkey* is the C2SP signed-note verifier
key ``<name>+<hex key hash>+<base64(0x01 || public key)>``. Where the private key lives and how it rotates
is `workbench.audit.keys`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519_ALG = b"\x01"  # the signed-note signature type byte for Ed25519


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key (raw 32 bytes)."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def base64(self) -> str:
        return b64(self.raw)

    def key_hash(self, name: str) -> bytes:
        """The signed-note key ID: first 4 bytes of SHA-256(name || "\\n" || 0x01 || key)."""
        return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519_ALG + self.raw).digest()[:4]

    def vkey(self, name: str) -> str:
        return f"{name}+{self.key_hash(name).hex()}+{b64(ED25519_ALG + self.raw)}"

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
            return True
        except (InvalidSignature, ValueError):
            return False

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """Read a key a reviewer holds: a vkey line, base64 of the raw key, or a PEM public key."""
        text = text.strip()
        if not text:
            raise ValueError("the key file is empty")
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("the PEM key is not an Ed25519 key")
            return cls(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        line = text.splitlines()[0].strip()
        try:
            parts = line.split("+", 2)  # a name has no "+", a key hash is 8 hex digits
            is_vkey = len(parts) == 3 and len(parts[1]) == 8 and all(c in "0123456789abcdef" for c in parts[1])
            name, keyhash, data = parts if is_vkey else ("", "", line)
            if is_vkey:
                raw = unb64(data)
                if raw[:1] != ED25519_ALG:
                    raise ValueError("the vkey is not an Ed25519 key")
                key = cls(raw[1:])
                if key.key_hash(name).hex() != keyhash:
                    raise ValueError("the vkey's key hash does not match its name and key")
                return key
            return cls(unb64(data))
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError(f"not a public key: {exc}") from exc

    def pem(self) -> str:
        key = Ed25519PublicKey.from_public_bytes(self.raw)
        return key.public_bytes(serialization.Encoding.PEM,
                                serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


class SigningKey:
    """A private Ed25519 key able to sign checkpoints."""

    def __init__(self, private: Ed25519PrivateKey):
        self._private = private
        self.public = PublicKey(private.public_key().public_bytes(serialization.Encoding.Raw,
                                                                  serialization.PublicFormat.Raw))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def seed(self) -> bytes:
        return self._private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                           serialization.NoEncryption())

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)
