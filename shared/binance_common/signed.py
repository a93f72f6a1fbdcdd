"""Signed (USER_DATA) REST requests: timestamp from the shared clock offset, recvWindow, signature, the
API-key header, the shared weight budget, and errors that say how to fix them.

One :class:`SignedRest` per process, over the process's :class:`~binance_common.rest.BinanceRest` (same
connection pool, same governor). Errors:

* -1021 (timestamp outside recvWindow): the clock offset is measured again (GET /api/v3/time, stored for
  every process) and the request is sent once more; a second -1021 says what to check.
* -1022 (bad signature): names the key type used and what to check for it.
* -2014 / -2015 / -2008 / HTTP 401: key format, invalid key, IP restriction, or the permission the call needs.

Order-count headers (``X-MBX-ORDER-COUNT-10S``, ``-1D``) are remembered per interval (:attr:`order_counts`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from .errors import AuthError
from .rest import BinanceRest
from .signing import Signer, account_id
from .weights import request_weight

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-MBX-APIKEY"
ORDER_COUNT_PREFIX = "x-mbx-order-count-"

KEY_TYPE_HINT = {
    "HMAC": "the key is an HMAC key (BINANCE_MCP_API_SECRET): check that the secret belongs to "
            "BINANCE_MCP_API_KEY and was copied whole",
    "RSA": "the key is an RSA key (BINANCE_MCP_PRIVATE_KEY_FILE): check that Binance holds the public key of "
           "this private key for BINANCE_MCP_API_KEY",
    "Ed25519": "the key is an Ed25519 key (BINANCE_MCP_PRIVATE_KEY_FILE): check that Binance holds the public "
               "key of this private key for BINANCE_MCP_API_KEY",
}


class SignedRest:
    """Signed GETs for one API key. ``clock``: seconds since the epoch (tests skew it)."""

    def __init__(self, rest: BinanceRest, api_key: str, signer: Signer, *, recv_window_ms: int = 5000,
                 clock: Any = time.time) -> None:
        self.rest = rest
        self._api_key = api_key
        self.signer = signer
        self.recv_window_ms = recv_window_ms
        self.clock = clock
        self.account = account_id(api_key)
        self.order_counts: dict[str, int] = {}
        self.resyncs = 0
        self._offset_loaded = False

    @property
    def api_key(self) -> str:
        """The API key as sent to Binance (a header or a WebSocket API parameter; never logged)."""
        return self._api_key

    @property
    def key_type(self) -> str:
        return self.signer.key_type

    def __repr__(self) -> str:  # never the key
        return f"SignedRest(account={self.account}, key_type={self.key_type})"

    async def _offset_ms(self) -> int:
        """Server time minus local time: this process's measure, else the one stored in Redis by any process."""
        if not self._offset_loaded:
            self._offset_loaded = True
            gov = self.rest.governor
            load = getattr(gov, "load_clock_offset", None)
            if self.rest.clock_offset_ms == 0 and load is not None:
                stored = await load()
                if stored is not None:
                    self.rest.clock_offset_ms = int(stored)
        return self.rest.clock_offset_ms

    async def timestamp_ms(self) -> int:
        return int(self.clock() * 1000) + await self._offset_ms()

    async def get(self, path: str, params: Mapping[str, Any] | None = None, *, permission: str = "USER_DATA",
                  weight: int | None = None) -> Any:
        """Signed GET; ``permission`` is named in the error when the key lacks it."""
        return await self.request("GET", path, params, permission=permission, weight=weight)

    async def request(self, method: str, path: str, params: Mapping[str, Any] | None = None, *,
                      permission: str = "USER_DATA", weight: int | None = None) -> Any:
        p = {k: v for k, v in (params or {}).items() if v is not None}
        w = weight if weight is not None else request_weight(path, p)
        for attempt in (1, 2):
            await self.rest.governor.acquire(w)  # any wait for budget happens before the timestamp is taken
            signed = {**p, "recvWindow": self.recv_window_ms, "timestamp": await self.timestamp_ms()}
            query = self.signer.signed_query(signed)
            try:
                body, headers = await self.rest.send(method, path, query, w, headers={API_KEY_HEADER: self._api_key},
                                                     acquired=True)
            except AuthError as e:
                if e.code == -1021 and attempt == 1:
                    self.resyncs += 1
                    log.warning("Binance says the request's timestamp is outside recvWindow; measuring the clock "
                                "offset again and retrying once")
                    await self.rest.server_time_ms()  # stores the new offset for every process (ClockStore)
                    continue
                raise self._explain(e, path, permission) from e
            self._count_orders(headers)
            return body
        raise AssertionError("unreachable")

    def _count_orders(self, headers: Mapping[str, str]) -> None:
        for k, v in headers.items():
            kl = k.lower()
            if kl.startswith(ORDER_COUNT_PREFIX) and v.isdigit():
                self.order_counts[kl[len(ORDER_COUNT_PREFIX):].upper()] = int(v)

    def _explain(self, e: AuthError, path: str, permission: str) -> AuthError:
        said = str(e).split(": ", 1)[-1]
        if e.code == -1021:
            msg = (f"Binance refused the request's timestamp twice (-1021) even after measuring the clock offset "
                   f"again: this machine's clock jumps or the network takes longer than recvWindow "
                   f"({self.recv_window_ms} ms). Sync the clock (NTP) or raise BINANCE_MCP_RECV_WINDOW_MS "
                   f"(max 60000).")
        elif e.code == -1022:
            msg = f"Binance says the signature is not valid (-1022): {KEY_TYPE_HINT[self.key_type]}."
        elif e.code == -2014:
            msg = ("Binance says the API-key format is invalid (-2014): BINANCE_MCP_API_KEY must be the key "
                   "exactly as Binance shows it (no spaces or quotes).")
        elif e.code in (-2015, -2008) or e.status == 401:
            msg = (f"Binance refused the API key for {path} ({e.code if e.code is not None else e.status}): the key "
                   f"is invalid or deleted, this machine's IP is not in the key's allowed list, or the key lacks "
                   f"the {permission} permission this tool needs (Binance API Management: 'Enable Reading' for "
                   f"USER_DATA).")
        else:
            msg = f"Binance refused the request's credentials ({e.code}): {said}"
        return AuthError(f"{msg} Binance said: {said}", status=e.status, code=e.code)


def signed_from(rest: BinanceRest, settings: Any, *, clock: Any = time.time) -> SignedRest | None:
    """The process's signed client when credentials are configured, else None."""
    from .signing import signer_from_settings

    signer = signer_from_settings(settings)
    if signer is None:
        return None
    return SignedRest(rest, settings.api_key.get_secret_value(), signer, recv_window_ms=settings.recv_window_ms,
                      clock=clock)

