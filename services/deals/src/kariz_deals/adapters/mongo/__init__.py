"""Deals and accounts in MongoDB: the repositories of a unit of work (inside its transaction), the read
side (outside any), the documents, the indexes, and the pipeline totals kept as deltas."""
