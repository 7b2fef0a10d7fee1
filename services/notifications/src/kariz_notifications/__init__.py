"""Kariz notifications: rules that turn sales events into e-mails and signed webhooks, with a delivery log."""
