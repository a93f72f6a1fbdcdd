"""sd_notify over $NOTIFY_SOCKET (READY=1, WATCHDOG=1, STOPPING=1), a few lines instead of a dependency."""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send ``state`` to systemd; False when not run by systemd (no $NOTIFY_SOCKET)."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(state.encode())
        return True
    except OSError:
        return False


def watchdog_interval_s() -> float | None:
    """Half of WatchdogSec (what systemd asks for), or None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    return int(usec) / 2_000_000 if usec and usec.isdigit() else None


def unit_text(exec_start: str, *, user: str | None = None, env_file: str = "/etc/binance-streamd.env") -> str:
    """A systemd unit for this install (``binance-streamd systemd-unit``): ``exec_start`` is the command that
    runs the daemon here (the venv's script path), ``user`` a fixed account (else a dynamic one). A venv
    under /home stays readable (ProtectHome=read-only)."""
    account = f"User={user}\n" if user else "DynamicUser=yes\n"
    home = "read-only" if exec_start.startswith(("/home/", "/root/")) else "yes"
    return f"""[Unit]
Description=binance-streamd: Binance WebSocket feed into Redis
Wants=network-online.target
After=network-online.target redis-server.service

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start} run --log-format json
EnvironmentFile=-{env_file}
Environment=PYTHONUNBUFFERED=1
WatchdogSec=30
Restart=on-failure
RestartSec=2
TimeoutStopSec=20
KillSignal=SIGTERM
{account}NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome={home}
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
CapabilityBoundingSet=

[Install]
WantedBy=multi-user.target
"""
