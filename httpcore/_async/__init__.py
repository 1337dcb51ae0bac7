"""The hand-written async half. ``httpcore/_sync`` is generated from it by scripts/unasync.py."""
