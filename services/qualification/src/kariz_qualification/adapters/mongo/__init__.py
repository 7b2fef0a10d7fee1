"""Qualification on MongoDB.

Collections: ``leads`` (one document per lead, ``_id`` = lead id, with ``status`` and ``score`` kept at
the top level for queries) and ``rule_sets`` (one document, ``_id`` = ``"current"``).
"""
