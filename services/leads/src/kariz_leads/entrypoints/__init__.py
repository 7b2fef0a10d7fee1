"""How the outside reaches leads: the HTTP API and the consumed events."""
