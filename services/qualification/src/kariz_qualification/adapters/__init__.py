"""Adapters: MongoDB persistence of leads and the rule set."""
