"""Mappings + ELF layouts -> regions of one kind each, and what the lesson says of each.

`classify` (rules.py) is pure: it classifies a saved snapshot exactly as a live
process.  `notes` holds the lesson's explanations as data, `resident` shares
smaps' per-mapping figures among regions, `locate` says what is at an address.
"""

from .rules import Classification, classify

__all__ = ["Classification", "classify"]
