"""binance-streamd: the WebSocket feed daemon that writes Binance streams into Redis without losing a message."""

__version__ = "0.1.0"
