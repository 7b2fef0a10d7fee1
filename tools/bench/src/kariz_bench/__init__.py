"""``make bench``: Kariz's throughput, latency, scaling and cost, beside the raw limit of its backends."""
