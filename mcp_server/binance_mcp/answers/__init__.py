"""What tools answer: the models clients see (:mod:`.market`, :mod:`.streams`, :mod:`.book`), where each answer
came from (:mod:`.provenance`), exact numbers (:mod:`.numbers`), argument checks (:mod:`.inputs`), conversions
of Binance JSON (:mod:`.convert`), and turning a model into a tool result (:mod:`.respond`)."""
