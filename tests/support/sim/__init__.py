"""A Binance Spot simulator (REST + WebSocket streams) for tests and benchmarks. See server.BinanceSim."""

from .server import BinanceSim, SimConfig

__all__ = ["BinanceSim", "SimConfig"]
