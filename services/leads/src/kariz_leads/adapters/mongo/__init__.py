"""Leads on MongoDB.

Collections: ``leads`` (one document per lead, ``_id`` = lead id, unique on ``contact.email``) and
``assignment_turns`` (one counter per rotation, ``_id`` = the rotation's key).
"""
