"""The live feed as the front end sees it: reading what the daemon writes to Redis (:class:`.reader.FeedReader`)
and asking it for streams (:mod:`.leases`)."""
