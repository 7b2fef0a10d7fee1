"""Qualification on MongoDB.

Collections: ``leads`` (one document per lead, ``_id`` = lead id, with ``status`` and ``score`` kept at
the top level for queries) and ``rule_set_versions`` (one document per version of the scoring rule set,
``_id`` = the version number; the newest is in force). ``rule_sets`` is the rule set of a database from
before versions were kept, carried over at start-up and then left as it was.
"""
