"""The use cases: turn a consumed event into deliveries, send the claimed ones and record what became of
them, and read the delivery log and the hand-overs."""
