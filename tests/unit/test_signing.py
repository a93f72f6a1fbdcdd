"""Signing as Binance's request-security docs specify it: the docs' HMAC vectors, percent-encoding first,
round trips for RSA and Ed25519 keys generated here, key loading and its errors."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from binance_common.settings import Settings
from binance_common.signing import (
    KeyConfigError,
    Signer,
    account_id,
    encode_query,
    signer_from_settings,
    ws_payload,
)
from binance_common.weights import request_weight
from tests.support.accounts import make_key

DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PARAMS = {"symbol": "LTCBTC", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": 1,
              "price": "0.1", "recvWindow": 5000, "timestamp": 1499827319559}


def test_hmac_matches_the_docs_example():
    signer = Signer.from_hmac_secret(DOC_SECRET)
    query = encode_query(DOC_PARAMS)
    assert query == ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
                     "&timestamp=1499827319559")
    assert signer.sign(query) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_non_ascii_values_are_percent_encoded_before_signing_as_in_the_docs():
    signer = Signer.from_hmac_secret(DOC_SECRET)
    query = encode_query(DOC_PARAMS | {"symbol": "１２３４５６"})
    assert query.startswith("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY")
    assert signer.sign(query) == "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"
    signed = signer.signed_query(DOC_PARAMS | {"symbol": "１２３４５６"})
    assert signed.endswith("&signature=e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3")


@pytest.mark.parametrize("key_type", ["RSA", "Ed25519"])
def test_asymmetric_signatures_verify_with_the_public_key(key_type):
    key = make_key(key_type, passphrase="pw" if key_type == "RSA" else None)
    signer = signer_from_settings(Settings(**key.settings()))
    assert signer is not None and signer.key_type == key_type
    from cryptography.hazmat.primitives import serialization

    public = serialization.load_pem_private_key(key.pem.encode(), key.passphrase.encode() if key.passphrase
                                                else None).public_key()
    payload = encode_query({"symbol": "BTCUSDT", "timestamp": 1668481559918, "recvWindow": 5000})
    sig = base64.b64decode(signer.sign(payload))
    if key_type == "RSA":
        public.verify(sig, payload.encode(), padding.PKCS1v15(), hashes.SHA256())
    else:
        public.verify(sig, payload.encode())
    # base64 has + / = : the query carries the signature percent-encoded
    tail = signer.signed_query({"timestamp": 1}).split("&signature=")[1]
    assert "+" not in tail and "/" not in tail and "=" not in tail


WS_DOC_PARAMS = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
                 "quantity": "0.01000000", "price": "52000.00", "recvWindow": 100, "timestamp": 1645423376532,
                 "apiKey": "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"}


def test_ws_api_signatures_match_the_docs_examples():
    """web-socket-api.md: sorted by name, raw text (no percent-encoding), for ASCII and non-ASCII symbols."""
    signer = Signer.from_hmac_secret(DOC_SECRET)
    assert ws_payload(WS_DOC_PARAMS).startswith("apiKey=vmPU") and "&price=52000.00&quantity=" in ws_payload(WS_DOC_PARAMS)
    assert signer.sign_ws_params(WS_DOC_PARAMS)["signature"] == \
        "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"
    non_ascii = WS_DOC_PARAMS | {"symbol": "１２３４５６", "side": "BUY", "quantity": "1.00000000",
                                 "price": "0.10000000", "recvWindow": 5000}
    assert signer.sign_ws_params(non_ascii)["signature"] == \
        "b33892ae8e687c939f4468c6268ddd4c40ac1af18ad19a064864c47bae0752cd"
    assert "absent" not in signer.sign_ws_params({"timestamp": 1, "absent": None})


def test_a_refused_setting_never_prints_the_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("BINANCE_MCP_API_SECRET", "HMACSECRET987654321")
    monkeypatch.setenv("BINANCE_MCP_PRIVATE_KEY_PASSPHRASE_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError) as e:
        Settings()
    assert "HMACSECRET987654321" not in str(e.value)
    monkeypatch.delenv("BINANCE_MCP_PRIVATE_KEY_PASSPHRASE_FILE")
    with pytest.raises(ValueError) as e:
        Settings()  # a secret without an API key
    assert "HMACSECRET987654321" not in str(e.value) and "BINANCE_MCP_API_KEY" in str(e.value)


def test_floats_are_refused():
    with pytest.raises(TypeError, match="Decimal"):
        encode_query({"price": 1e-7})


def test_key_errors_are_clear():
    key = make_key("RSA", passphrase="right")
    with pytest.raises(KeyConfigError, match="PASSPHRASE"):
        Signer.from_pem(key.pem or "")
    with pytest.raises(KeyConfigError, match="cannot be read"):
        Signer.from_pem(key.pem or "", "wrong")
    with pytest.raises(KeyConfigError, match="PEM"):
        Signer.from_pem("not a key")
    with pytest.raises(ValueError, match="not both"):
        Settings(api_key="k", api_secret="s", private_key=make_key("Ed25519").pem)
    with pytest.raises(ValueError, match="BINANCE_MCP_API_KEY"):
        Settings(api_secret="s")


def test_secrets_come_from_files(tmp_path, monkeypatch):
    key = make_key("Ed25519")
    (tmp_path / "key.pem").write_text(key.pem or "")
    (tmp_path / "api").write_text(key.api_key + "\n")
    monkeypatch.setenv("BINANCE_MCP_PRIVATE_KEY_FILE", str(tmp_path / "key.pem"))
    monkeypatch.setenv("BINANCE_MCP_API_KEY_FILE", str(tmp_path / "api"))
    s = Settings()
    assert s.has_credentials and s.api_key is not None and s.api_key.get_secret_value() == key.api_key
    assert signer_from_settings(s).key_type == "Ed25519"  # type: ignore[union-attr]
    assert s.redacted()["private_key"] == "***" and s.redacted()["api_key"] == "***"
    monkeypatch.setenv("BINANCE_MCP_PRIVATE_KEY_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="cannot be read"):
        Settings()


def test_account_id_is_stable_and_reveals_nothing():
    assert account_id("abc") == account_id("abc") != account_id("abd")
    assert "abc" not in account_id("abc") and len(account_id("abc")) == 16


def test_signed_endpoint_weights():
    assert request_weight("/api/v3/account") == 20
    assert request_weight("/api/v3/openOrders", {"symbol": "BTCUSDT"}) == 6
    assert request_weight("/api/v3/openOrders") == 80
    assert request_weight("/api/v3/myTrades", {"symbol": "X", "orderId": 5}) == 5
    assert request_weight("/api/v3/myTrades", {"symbol": "X"}) == 20
    assert request_weight("/api/v3/rateLimit/order") == 40
    assert request_weight("/sapi/v1/asset/tradeFee") == 1


def test_redacted_settings_hide_every_credential_in_urls():
    s = Settings(redis_url="rediss://user:p@ss@redis.internal:6380/0?ssl_ca_certs=/ca.pem&password=pw2",
                 proxy="http://u:s3cr3tpw@proxy:8080")
    shown = repr(s.redacted())
    assert "p@ss" not in shown and "ss@redis" not in shown and "pw2" not in shown and "s3cr3tpw" not in shown
    assert "redis.internal:6380" in shown and "ssl_ca_certs=/ca.pem" in shown
    with pytest.raises(ValueError, match="no toolset"):
        Settings(toolsets="")
