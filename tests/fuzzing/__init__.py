"""Seeded fuzzing of the protocol layers: case generators, an in-memory peer, runners."""
