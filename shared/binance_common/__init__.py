"""The contract shared by binance-streamd and binance-mcp: settings, Redis keys, stream names, models, REST."""

__version__ = "0.1.0"
