"""The notifications domain: which events reach whom, what the messages say, and how a delivery is
retried. Plain Python, no I/O."""
