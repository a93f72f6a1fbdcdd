"""Live resources (``binance://...``) and their change notifications.

:mod:`.uris` is the URI grammar; :mod:`.live` registers the resources (read from the feed); :mod:`.bus` turns
the daemon's Redis update channel into per-URI notifications; :mod:`.legacy` serves ``resources/subscribe``
for clients of the older protocol era (and leases the stream behind each URI).
"""
