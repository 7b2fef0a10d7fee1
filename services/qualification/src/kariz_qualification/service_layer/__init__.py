"""The use cases of qualification: commands, the handler of each command and consumed event, and the
read side the HTTP API answers from."""
