"""Deliveries and hand-overs in MongoDB: documents, indexes, repositories, the unit of work."""
