"""The use cases of leads: commands, the handler of each command and consumed event, and the read side
the HTTP API answers from."""
