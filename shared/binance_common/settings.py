"""Settings for both processes: environment variables prefixed ``BINANCE_MCP_`` plus an optional TOML file.

Precedence (highest first): keyword arguments, environment, ``.env``-less TOML file named by
``BINANCE_MCP_CONFIG``, defaults. Secrets (API key and secret) come from the environment or from files
named by ``*_FILE`` variables; they are never accepted as tool arguments and never logged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CsvList = Annotated[list[str], NoDecode]

ENV_PREFIX = "BINANCE_MCP_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"

PRODUCTION_REST = "https://api.binance.com"
PRODUCTION_WS = "wss://stream.binance.com:9443"
PRODUCTION_WS_API = "wss://ws-api.binance.com:443/ws-api/v3"
PRODUCTION_FUTURES_REST = "https://fapi.binance.com"
PRODUCTION_FUTURES_WS = "wss://fstream.binance.com"

TOOLSET_NAMES = ("spot", "streams", "account", "trading", "futures")
DEFAULT_TOOLSETS = ("spot", "streams", "account")
URL_FIELDS = ("rest_base_url", "ws_base_url", "ws_api_url", "futures_rest_base_url", "futures_ws_base_url")
PROFILES: dict[str, dict[str, str]] = {
    "prod": dict(zip(URL_FIELDS, (PRODUCTION_REST, PRODUCTION_WS, PRODUCTION_WS_API, PRODUCTION_FUTURES_REST,
                                  PRODUCTION_FUTURES_WS), strict=True)),
    # public market data only (no account endpoints, no user-data stream); futures have no such mirror
    "data-api": dict(zip(URL_FIELDS, ("https://data-api.binance.vision", "wss://data-stream.binance.vision:443",
                                      PRODUCTION_WS_API, PRODUCTION_FUTURES_REST, PRODUCTION_FUTURES_WS), strict=True)),
    "testnet": dict(zip(URL_FIELDS, ("https://testnet.binance.vision", "wss://stream.testnet.binance.vision:9443",
                                     "wss://ws-api.testnet.binance.vision/ws-api/v3", "https://testnet.binancefuture.com",
                                     "wss://fstream.binancefuture.com"), strict=True)),
    "demo": dict(zip(URL_FIELDS, ("https://demo-api.binance.com", "wss://demo-stream.binance.com:9443",
                                  "wss://demo-ws-api.binance.com/ws-api/v3", "https://demo-fapi.binance.com",
                                  "wss://fstream.binancefuture.com"), strict=True)),
}
"""Every base URL of each endpoint profile (``BINANCE_MCP_PROFILE``); an URL set on its own overrides it."""
SECRET_FIELDS = ("api_key", "api_secret", "private_key", "private_key_passphrase", "auth_token")
"""Fields read from ``BINANCE_MCP_<NAME>_FILE`` when the variable itself is unset, and masked by redacted()."""


class Settings(BaseSettings):
    """Every knob of both processes. Units are in the field names or descriptions."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        validate_default=True,
        populate_by_name=True,
        hide_input_in_errors=True,  # a refused setting must never print the secrets beside it
    )

    # --- Binance endpoints -------------------------------------------------------------------------
    profile: Literal["prod", "data-api", "testnet", "demo"] = Field("prod", description=(
        "Sets every base URL consistently: prod (Binance), data-api (data-api.binance.vision and "
        "data-stream.binance.vision: public market data only), testnet (Spot and futures test networks), demo "
        "(Binance's demo trading). A URL set on its own overrides the profile's."))
    rest_base_url: str = Field(PRODUCTION_REST, description="Binance REST base URL (no trailing slash).")
    ws_base_url: str = Field(PRODUCTION_WS, description="Binance WebSocket streams base URL.")
    proxy: str | None = Field(
        None, description="HTTP(S) or SOCKS5 proxy URL for REST, e.g. socks5://127.0.0.1:1080."
    )
    ws_proxy: str | None = Field(
        None, description="Proxy URL for WebSockets (daemon); defaults to `proxy` when unset."
    )
    rest_timeout_s: float = Field(10.0, gt=0, le=120, description="Total timeout of one REST call, s.")
    rest_max_weight_per_minute: int = Field(
        6000, gt=0, description="REQUEST_WEIGHT limit per minute per IP (Binance's exchangeInfo value)."
    )
    rest_weight_headroom: float = Field(
        0.9, gt=0, le=1, description="Fraction of the weight limit the governor lets callers use."
    )
    ws_api_url: str = Field(PRODUCTION_WS_API, description=(
        "Binance WebSocket API URL (the daemon's user-data stream subscription)."))
    futures_rest_base_url: str = Field(PRODUCTION_FUTURES_REST, description="USD-M futures REST base URL.")
    futures_ws_base_url: str = Field(PRODUCTION_FUTURES_WS, description=(
        "USD-M futures WebSocket base URL; streams go to its /public or /market path by kind."))
    futures_rest_max_weight_per_minute: int = Field(
        2400, gt=0, description="USD-M futures REQUEST_WEIGHT limit per minute per IP (tracked apart from spot's).")
    futures_silence_s: float = Field(30.0, gt=0, description=(
        "A futures stream acknowledged this long without a message is reported and moved to the other path "
        "(/public or /market): Binance acknowledges a stream on the wrong path and then sends nothing."))
    futures_max_streams_per_connection: int = Field(200, ge=1, le=1024, description=(
        "Streams a futures connection carries (Binance allows 1024 since 2025-07; 200 keeps reconnects light)."))
    api_key: SecretStr | None = Field(None, description="Binance API key (env or *_FILE only).")
    api_secret: SecretStr | None = Field(None, description=(
        "HMAC-SHA256 secret of the API key (env or *_FILE only). Use either this or private_key."))
    private_key: SecretStr | None = Field(None, description=(
        "PEM private key (Ed25519 or RSA, detected from the key) of the API key; usually given as "
        "BINANCE_MCP_PRIVATE_KEY_FILE. Never a tool argument."))
    private_key_passphrase: SecretStr | None = Field(None, description="Passphrase of an encrypted private key.")
    recv_window_ms: int = Field(5000, ge=1, le=60_000, description=(
        "recvWindow of signed requests, ms: Binance refuses a request that reaches it later than this after "
        "its timestamp (max 60000; Binance recommends 5000 or less)."))
    account_symbols: CsvList = Field(default_factory=list, description=(
        "Symbols the daemon reconciles orders and fills of after a user-data stream gap, besides those it "
        "has seen in the account's orders and events."))

    # --- Redis ---------------------------------------------------------------------------------------
    redis_url: str | None = Field(
        None, description="redis:// URL. Unset: embedded mode (in-process feed over an in-memory Redis)."
    )
    namespace: str = Field("bnc", pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="Redis key prefix.")

    # --- Daemon --------------------------------------------------------------------------------------
    streams: CsvList = Field(default_factory=list, description="Always-on streams of the daemon.")
    order_book_symbols: CsvList = Field(
        default_factory=list, description="Symbols for which the daemon keeps a local order book."
    )
    order_book_top_n: int = Field(50, ge=1, le=5000, description="Levels a side written to Redis.")
    order_book_snapshot_limit: int = Field(1000, ge=5, le=5000, description=(
        "Levels a side asked for in a depth snapshot: 1000 weighs 50, 5000 weighs 250. Levels past the "
        "snapshot's last one are unknown until they change, so they are never served, and a book whose known "
        "levels run short of order_book_top_n (or half the limit) takes a new snapshot."))
    backfill_max_ids: int = Field(20_000, ge=0, le=10_000_000, description=(
        "Most trade ids one catch-up or backfill recovers from REST (1000 a request); an older remainder is "
        "written to the history as an explicit gap entry."))
    history_maxlen: int = Field(10_000, ge=10, le=10_000_000, description="Approx. cap of each Redis Stream.")
    otel_spans: bool = Field(False, description=(
        "Emit an OpenTelemetry span per MCP message (the SDK's tracing; needs an exporter installed in the "
        "process). Off by default: it costs about 5% of a cheap call's CPU."))
    answer_budget_bytes: int = Field(20_000, ge=0, le=10_000_000, description=(
        "Most bytes of JSON text a series answer (klines, trades, stream history) carries, so it fits an "
        "agent's context: longer answers are cut, say truncated and how to continue. 0 = no limit."))
    max_streams_per_connection: int = Field(200, ge=1, le=1024)
    connection_lifetime_s: float = Field(
        23 * 3600.0, gt=0, description="Rotate a connection after this long (Binance closes at 24 h)."
    )
    stale_after_s: float = Field(
        60.0, gt=0, description="Watchdog: reconnect a connection whose live streams sent nothing this long "
        "(unless they all are event-only streams Binance still lists: a calm market)."
    )
    reconnect_max_delay_s: float = Field(30.0, gt=0)
    heartbeat_ttl_s: float = Field(15.0, gt=0)
    lease_ttl_s: float = Field(60.0, ge=1, description="Lease lifetime an MCP replica writes; renewed at 1/3.")
    unsubscribe_grace_s: float = Field(30.0, ge=0, description="Keep an unwanted stream this long.")
    redis_buffer_max: int = Field(200_000, ge=1000, description="Messages held while Redis is down.")
    writer_linger_ms: float = Field(0.5, ge=0, le=50, description=(
        "A small batch waits this long after the previous Redis write: fewer round trips (less CPU) for "
        "at most this much latency; 0 writes every event-loop turn."))
    metrics_port: int | None = Field(None, description="Prometheus metrics port (off when unset).")

    # --- MCP front end -------------------------------------------------------------------------------
    toolsets: CsvList = Field(default_factory=lambda: list(DEFAULT_TOOLSETS), description=(
        "Tool groups this front end lists: spot, streams, account, trading, futures, or all. The default "
        "(spot, streams, account) stays under 40 tools, the limit some clients show; account and trading "
        "need an API key."))
    dynamic_toolsets: bool = Field(False, description=(
        "Add the enable_toolsets tool (stdio): an agent adds a toolset when it needs one, and the client is "
        "told the tool list changed."))
    http_host: str = Field("127.0.0.1", description="Bind address of the HTTP transport.")
    http_port: int = Field(8765, ge=0, le=65535)
    auth_token: SecretStr | None = Field(None, description="Bearer token for the HTTP transport.")
    allowed_hosts: CsvList = Field(default_factory=list, description="Extra Host headers to accept.")
    exchange_info_ttl_s: float = Field(300.0, ge=0, description="Shared exchangeInfo cache lifetime.")
    oauth_issuer: str | None = Field(None, description=(
        "OAuth 2.1 authorization server (issuer URL) whose JWT access tokens the HTTP front end accepts."))
    oauth_resource: str | None = Field(None, description=(
        "This server's public MCP URL (the tokens' audience), e.g. https://mcp.example.com/mcp."))
    oauth_jwks_url: str | None = Field(None, description="JWKS URL of the issuer (default <issuer>/.well-known/jwks.json).")
    oauth_required_scopes: CsvList = Field(default_factory=lambda: ["market:read"], description=(
        "Scopes every access token must carry."))
    oauth_algorithms: CsvList = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"], description=(
        "JWT signature algorithms accepted."))

    @field_validator(*URL_FIELDS)
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if v.split("://", 1)[0] not in {"http", "https", "ws", "wss"}:
            raise ValueError(f"URL must start with http(s):// or ws(s)://, got {v!r}")
        return v

    @field_validator("streams", "order_book_symbols", "allowed_hosts", "oauth_required_scopes", "oauth_algorithms",
                     "account_symbols", "toolsets", mode="before")
    @classmethod
    def _split_csv(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().startswith("["):
            import json

            return json.loads(v)
        if isinstance(v, str):
            return [p.strip() for p in v.replace(";", ",").split(",") if p.strip()]
        return v

    @field_validator("toolsets")
    @classmethod
    def _known_toolsets(cls, v: list[str]) -> list[str]:
        names = [x.strip().lower() for x in v]
        if not names:
            raise ValueError(f"no toolset named: use any of {', '.join(TOOLSET_NAMES)}, or all")
        if "all" in names:
            return list(TOOLSET_NAMES)
        bad = [x for x in names if x not in TOOLSET_NAMES]
        if bad:
            raise ValueError(f"unknown toolset {bad[0]!r}: use any of {', '.join(TOOLSET_NAMES)}, or all")
        return list(dict.fromkeys(names))

    @field_validator("streams")
    @classmethod
    def _lower_symbols(cls, v: list[str]) -> list[str]:
        """``BTCUSDT@trade`` means ``btcusdt@trade`` (Binance stream symbols are lowercase; the rest of the
        name is case-sensitive, e.g. ``aggTrade``, ``kline_1M``)."""
        out = []
        for name in v:
            sym, sep, rest = name.partition("@")
            out.append(name if name.startswith("!") else sym.lower() + sep + rest)
        return out

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        """Read ``BINANCE_MCP_API_KEY_FILE`` style variables (Docker/systemd credentials)."""
        if not isinstance(data, dict):
            return data
        for name in SECRET_FIELDS:
            path = os.environ.get(f"{ENV_PREFIX}{name.upper()}_FILE")
            if path and not data.get(name):
                try:
                    data[name] = Path(path).read_text().strip()
                except OSError as e:
                    raise ValueError(f"{ENV_PREFIX}{name.upper()}_FILE names a file that cannot be read: "
                                     f"{path} ({e.strerror})") from None
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get(CONFIG_ENV)
        if path:
            if not Path(path).is_file():  # a typo must not silently mean "all defaults"
                raise FileNotFoundError(f"{CONFIG_ENV} names {path!r}, which is not a readable file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)

    @model_validator(mode="after")
    def _oauth_complete(self) -> Settings:
        if self.oauth_issuer and not self.oauth_resource:
            raise ValueError("BINANCE_MCP_OAUTH_ISSUER needs BINANCE_MCP_OAUTH_RESOURCE: this server's public MCP "
                             "URL, e.g. https://mcp.example.com/mcp (the access tokens' audience)")
        return self

    @model_validator(mode="after")
    def _profile_urls(self) -> Settings:
        """Base URLs not set on their own come from the profile."""
        for name, url in PROFILES[self.profile].items():
            if name not in self.model_fields_set:
                setattr(self, name, url)
        if self.profile == "data-api" and self.has_credentials:
            raise ValueError("the data-api profile serves public market data only (no account endpoints): use "
                             "BINANCE_MCP_PROFILE=prod for the account tools, or unset the API key")
        return self

    @model_validator(mode="after")
    def _one_key_kind(self) -> Settings:
        if self.api_secret and self.private_key:
            raise ValueError("set either BINANCE_MCP_API_SECRET (HMAC key) or BINANCE_MCP_PRIVATE_KEY_FILE "
                             "(Ed25519 or RSA key), not both: one API key has one kind")
        if (self.api_secret or self.private_key) and not self.api_key:
            raise ValueError("a secret or private key is configured without BINANCE_MCP_API_KEY (the key "
                             "Binance shows next to it)")
        return self

    @property
    def has_credentials(self) -> bool:
        """True when an API key and its secret or private key are configured (account tools, user data)."""
        return bool(self.api_key and (self.api_secret or self.private_key))

    @property
    def embedded(self) -> bool:
        """True when no Redis URL is configured: run the feed in-process over fakeredis."""
        return not self.redis_url

    def redacted(self) -> dict[str, Any]:
        """Settings safe to log or show: secrets masked, credentials in URLs removed."""
        out = self.model_dump()
        for k in SECRET_FIELDS:
            out[k] = "***" if out.get(k) else None
        for k in ("redis_url", "proxy", "ws_proxy", "oauth_jwks_url"):
            out[k] = _mask_url(out.get(k))
        return out


def _mask_url(url: str | None) -> str | None:
    """A URL without its credentials: user:password before the last ``@`` and any ``password=`` in the query."""
    if not url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    host_part, sep, query = rest.partition("?")
    if "@" in host_part:
        host_part = "***@" + host_part.rpartition("@")[2]
    if sep:
        query = "&".join("password=***" if q.lower().startswith("password=") else q for q in query.split("&"))
    return f"{scheme}://{host_part}{sep}{query}"
