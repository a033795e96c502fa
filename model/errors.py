"""One exception hierarchy for the whole project (the server extends it)."""

from __future__ import annotations


class DrumDiffError(Exception):
    """Base of every error drumdiff raises on purpose."""


class ConfigError(DrumDiffError, ValueError):
    """A configuration file or override is malformed."""


class CheckpointError(DrumDiffError):
    """A checkpoint is missing, truncated, foreign or unsafe."""


class AudioError(DrumDiffError):
    """An audio file cannot be read, or holds unusable audio."""
