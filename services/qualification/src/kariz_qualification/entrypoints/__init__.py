"""How the world reaches qualification: the HTTP API and the consumed Kafka events."""
