"""Leads on MongoDB.

Collections: ``leads`` (one document per lead, ``_id`` = lead id, unique on ``contact.email``),
``assignment_turns`` (one counter per rotation, ``_id`` = the rotation's key) and ``lead_history``
(append-only: one document per change of a lead, who made it and when).
"""
