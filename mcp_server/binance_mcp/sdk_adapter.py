"""Every use of the MCP SDK's private attributes, in one place. ``tests/integration/test_adapters.py`` pins
them: when an SDK release renames or removes one, that test fails by name instead of a feature failing
quietly (the callers fall back to their safe behaviour: no session-scoped leases, no legacy subscribe).

* ``MCPServer._lowlevel_server``: MCPServer has no public hook for ``resources/subscribe`` /
  ``subscriptions/listen`` handlers; the low-level server's ``add_request_handler`` is the only way in.
* ``ServerSession._connection``: the connection behind a request, to tell a long-lived session (stateful HTTP,
  SSE, stdio) from a per-request one (stateless HTTP), which decides who holds a subscription lease.
* ``mcp.server._otel.OpenTelemetryMiddleware``: the SDK puts it first in the public ``MCPServer.middleware``
  list and documents dropping it to opt out of a span per message; its class lives in a private module.
"""

from __future__ import annotations

from typing import Any

__all__ = ["drop_tracing", "lowlevel_server", "session_connection"]


def lowlevel_server(mcp: Any) -> Any:
    """The low-level server of an ``MCPServer`` (has ``add_request_handler``)."""
    return mcp._lowlevel_server


def session_connection(session: Any) -> Any | None:
    """The SDK connection object behind ``session``, or None when the SDK does not expose it."""
    return getattr(session, "_connection", None)


def drop_tracing(mcp: Any) -> int:
    """Remove the SDK's OpenTelemetry middleware from ``mcp.middleware`` (a span per message: no-op work until
    an exporter is installed, about 5% of a cheap call's CPU). Returns how many were removed."""
    try:
        from mcp.server._otel import OpenTelemetryMiddleware
    except ImportError:
        return 0
    chain = mcp.middleware
    keep = [m for m in chain if not isinstance(m, OpenTelemetryMiddleware)]
    removed = len(chain) - len(keep)
    chain[:] = keep
    return removed
