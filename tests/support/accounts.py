"""API keys for tests: one of each type, generated here, registered with the simulator's account, and the
settings that make a replica or a daemon use it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from tests.support.sim.account import SimKey
from tests.support.sim.server import BinanceSim

KEY_TYPES = ("HMAC", "RSA", "Ed25519")


@dataclass
class KeyPair:
    api_key: str
    key_type: str
    secret: str | None = None  # HMAC secret
    pem: str | None = None  # private key PEM
    passphrase: str | None = None

    def settings(self) -> dict[str, Any]:
        """Settings keyword arguments for this key (as the environment would give them)."""
        kw: dict[str, Any] = {"api_key": self.api_key}
        if self.secret is not None:
            kw["api_secret"] = self.secret
        else:
            kw["private_key"] = self.pem
            if self.passphrase:
                kw["private_key_passphrase"] = self.passphrase
        return kw

    def secret_material(self) -> list[str]:
        """Strings that must never appear in a log, an answer, an error or Redis."""
        out = [x for x in (self.api_key, self.secret, self.passphrase) if x]
        if self.pem:
            # the key body lines (the PEM header is public knowledge)
            out += [line for line in self.pem.splitlines() if line and not line.startswith("-----")]
        return out


def make_key(key_type: str, *, passphrase: str | None = None) -> KeyPair:
    api_key = secrets.token_hex(32)
    if key_type == "HMAC":
        return KeyPair(api_key, "HMAC", secret=secrets.token_hex(32))
    private = ed25519.Ed25519PrivateKey.generate() if key_type == "Ed25519" else \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    enc = serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc).decode()
    return KeyPair(api_key, key_type, pem=pem, passphrase=passphrase)


def register(sim: BinanceSim, key: KeyPair, **kw: Any) -> SimKey:
    """Give the simulator the key's public half (or HMAC secret)."""
    public = None
    if key.pem is not None:
        private = serialization.load_pem_private_key(
            key.pem.encode(), password=key.passphrase.encode() if key.passphrase else None)
        public = private.public_key()
    return sim.account.add_key(SimKey(key.api_key, key.key_type, secret=key.secret, public_key=public, **kw))
