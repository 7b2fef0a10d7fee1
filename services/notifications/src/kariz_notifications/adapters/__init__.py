"""What notifications talks to: its MongoDB database, an SMTP server, webhook subscribers."""
