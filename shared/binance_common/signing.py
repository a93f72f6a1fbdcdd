"""Signing Binance requests with the account's key: HMAC-SHA256, RSA (PKCS#1 v1.5, SHA-256) or Ed25519.

As Binance's request-security docs specify (rest-api.md "SIGNED Endpoint security", web-socket-api.md):

* REST: the payload is the query string (``parameter=value`` pairs joined by ``&``, every value
  percent-encoded as UTF-8, so non-ASCII symbols do not fail with -1022), concatenated with the body; the
  signature is appended as ``&signature=`` (itself percent-encoded: base64 has ``+``, ``/`` and ``=``).
* WebSocket API: the payload is every parameter but ``signature``, sorted by name, joined as raw UTF-8
  ``parameter=value`` text with no percent-encoding (web-socket-api.md: "no percent encoding here").
* HMAC signatures are lowercase hex; RSA and Ed25519 signatures are base64.

The cryptography is the ``cryptography`` package's; nothing here implements a primitive. A :class:`Signer`
holds the key material and never shows it: its ``repr`` names only the key type.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from .settings import Settings

KeyType = Literal["HMAC", "RSA", "Ed25519"]
SAFE = "-_.~"
"""Characters percent-encoding leaves as they are (RFC 3986 unreserved), as in Binance's examples."""


class KeyConfigError(ValueError):
    """The configured key cannot be used (unreadable PEM, wrong passphrase, unsupported key type)."""


def encode_value(value: Any) -> str:
    """One parameter value as Binance reads it: booleans lowercase, Decimals verbatim, lists as compact JSON
    arrays of strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(f'"{x}"' for x in value) + "]"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("pass a Decimal or a string, not a float: a float may print as 1e-07, which Binance refuses")
    return str(value)


def encode_query(params: Mapping[str, Any]) -> str:
    """``a=1&b=x`` with every value percent-encoded (UTF-8) and None values left out: a REST query string."""
    return "&".join(f"{quote(k, safe=SAFE)}={quote(encode_value(v), safe=SAFE)}" for k, v in params.items()
                    if v is not None)


def ws_payload(params: Mapping[str, Any]) -> str:
    """The WebSocket API's signature payload: parameters sorted by name, raw ``k=v`` text joined by ``&``."""
    return "&".join(f"{k}={encode_value(v)}" for k, v in sorted(params.items()) if v is not None and k != "signature")


@dataclass(frozen=True)
class Signer:
    """Signs payloads with one key. Build it with :func:`signer_from_settings` or the ``from_*`` methods."""

    key_type: KeyType
    _secret: bytes = field(repr=False)
    _private: Any = field(default=None, repr=False)

    @classmethod
    def from_hmac_secret(cls, secret: str) -> Signer:
        if not secret.strip():
            raise KeyConfigError("the API secret is empty")
        return cls("HMAC", secret.strip().encode())

    @classmethod
    def from_pem(cls, pem: str | bytes, passphrase: str | None = None) -> Signer:
        """An Ed25519 or RSA private key in PEM (PKCS#8, encrypted or not); the type is read from the key."""
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(data, password=passphrase.encode() if passphrase is not None
                                                     else None)
        except TypeError as e:  # encrypted without a passphrase, or a passphrase for a plain key
            raise KeyConfigError(
                "the private key is encrypted: set BINANCE_MCP_PRIVATE_KEY_PASSPHRASE (or _FILE)"
                if passphrase is None else "a passphrase is set but the private key is not encrypted") from e
        except (ValueError, UnsupportedAlgorithm) as e:
            raise KeyConfigError(
                "the private key cannot be read: expected a PEM private key (-----BEGIN PRIVATE KEY-----, "
                "Ed25519 or RSA), or the passphrase is wrong") from e
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return cls("Ed25519", b"", key)
        if isinstance(key, rsa.RSAPrivateKey):
            return cls("RSA", b"", key)
        raise KeyConfigError(f"unsupported private key type {type(key).__name__}: Binance takes Ed25519 or RSA")

    def sign(self, payload: str) -> str:
        """The signature of ``payload`` (already percent-encoded): hex for HMAC, base64 otherwise."""
        raw = payload.encode()
        if self.key_type == "HMAC":
            return hmac.new(self._secret, raw, hashlib.sha256).hexdigest()
        if self.key_type == "Ed25519":
            return base64.b64encode(self._private.sign(raw)).decode()
        return base64.b64encode(self._private.sign(raw, padding.PKCS1v15(), hashes.SHA256())).decode()

    def signed_query(self, params: Mapping[str, Any], body: str = "") -> str:
        """The REST query string with its ``signature`` appended (payload = query + body)."""
        query = encode_query(params)
        return f"{query}&signature={quote(self.sign(query + body), safe=SAFE)}"

    def sign_ws_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """WebSocket API ``params`` (None values dropped) with their ``signature`` (:func:`ws_payload`)."""
        clean = {k: v for k, v in params.items() if v is not None}
        return {**clean, "signature": self.sign(ws_payload(clean))}


def signer_from_settings(settings: Settings) -> Signer | None:
    """The configured key's signer, None without credentials. Raises KeyConfigError for an unusable key."""
    if not settings.has_credentials:
        return None
    if settings.api_secret is not None:
        return Signer.from_hmac_secret(settings.api_secret.get_secret_value())
    assert settings.private_key is not None
    phrase = settings.private_key_passphrase.get_secret_value() if settings.private_key_passphrase else None
    return Signer.from_pem(settings.private_key.get_secret_value(), phrase)


def account_id(api_key: str) -> str:
    """The account-scoped Redis prefix's id: a short digest of the API key (the key itself never reaches
    Redis). Front ends and the daemon holding the same key meet under the same id; others find nothing."""
    return hashlib.sha256(b"binance-mcp account " + api_key.encode()).hexdigest()[:16]
