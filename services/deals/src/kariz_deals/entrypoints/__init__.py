"""How the world reaches deals: the HTTP API, the consumed events, the background loops."""
