"""What a sound-design request leaves out: one table for the CLI, the daemon and the protocol
docs (no torch here, so `drumdiff design --help` stays light)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DesignDefaults:
    """What a sound-design request leaves out, for the CLI, the daemon and the protocol docs."""

    level: float = 0.5  # vary: noise level 0..1 (0 = the same hit, 1 = a new one)
    interpolate_count: int = 5  # interpolate: hits, endpoints included
    interpolate_steps: int = 32  # interpolate: DDIM inversion steps
    refine: int = 2  # interpolate: fixed-point refinements per inversion step
    interpolate_guidance: float = 1.0  # interpolate: guidance of the inversion and the renders
    seam_ms: float = 5.0  # inpaint: crossfade between kept and regenerated audio


DESIGN_DEFAULTS = DesignDefaults()
