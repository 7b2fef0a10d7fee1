"""How notifications is driven: the HTTP API, the consumed events, the delivery worker."""
