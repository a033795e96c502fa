"""Render finishing: class envelope limit, DC blocker, normalisation, and their place in
render()."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from drumdiff.model.audio import normalise_peak
from drumdiff.model.config import FinishConfig
from drumdiff.model.core.checkpoint import LoadedModel
from drumdiff.model.judge.evaluate import grid_peaks_db
from drumdiff.model.render.finish import (
    block_rms_db,
    dc_block,
    envelope_bound,
    finish_render,
    gate_tail,
    limit_to_envelope,
    measure_class_envelopes,
    suppress_patch_grid,
)
from drumdiff.model.render.generate import render, settings_for

SR = 44100


def decaying(seconds_tau: float, length: int = 8192, seed: int = 0) -> np.ndarray:
    t = np.arange(length) / SR
    noise = np.random.default_rng(seed).standard_normal(length)
    return (noise * np.exp(-t / seconds_tau))[None].astype(np.float32)


def test_measured_envelope_is_the_percentile_of_block_levels_per_class() -> None:
    short = [decaying(0.01, seed=s) for s in range(5)]
    long = [decaying(0.2, seed=10 + s) for s in range(5)]
    clips = [(c, 0) for c in short] + [(c, 1) for c in long]
    envelopes = measure_class_envelopes(iter(clips), 3, 1024, 50.0)
    assert len(envelopes[0]) == len(envelopes[1]) == 8 and envelopes[2] == ()
    # Relative to each clip's peak: the short class falls far below the long one by the end.
    assert envelopes[0][-1] < envelopes[1][-1] - 40
    expected = np.median([block_rms_db(c / np.abs(c).max(), 1024) for c in short], axis=0)
    np.testing.assert_allclose(envelopes[0], expected, atol=0.01)


def test_each_class_can_have_its_own_percentile() -> None:
    clips = [(decaying(0.01 + 0.02 * s, seed=s), c) for c in (0, 1) for s in range(9)]
    both_median = measure_class_envelopes(iter(clips), 2, 1024, 50.0)
    tighter = measure_class_envelopes(iter(clips), 2, 1024, (20.0, 50.0))
    assert tighter[1] == both_median[1]  # the same clips at the same percentile
    assert all(a <= b for a, b in zip(tighter[0], both_median[0]))
    assert sum(tighter[0]) < sum(both_median[0]) - 10  # the longer decays are left out
    with pytest.raises(ValueError, match="1 percentiles for 2 classes"):
        measure_class_envelopes(iter(clips), 2, 1024, (50.0,))


def test_class_percentiles_are_read_checked_and_named_by_class() -> None:
    from drumdiff.model.config import FinishConfig
    from drumdiff.model.errors import ConfigError

    finish = FinishConfig(class_percentiles=("snare=50", " kick = 60"))
    assert finish.percentiles_for(("kick", "snare", "tom")) == (60.0, 50.0, 75.0)
    for bad in ("snare", "snare=101", "snare=x", "=50"):
        with pytest.raises(ConfigError, match="class_percentiles"):
            FinishConfig(class_percentiles=(bad,))
    with pytest.raises(ConfigError, match="named twice"):
        FinishConfig(class_percentiles=("snare=50", "snare=60"))
    with pytest.raises(ConfigError, match=r"names \['snare'\], which this model does not have"):
        finish.percentiles_for(("kick", "tom"))
    assert finish.percentiles_for(("kick", "zap"), ignore_unknown=True) == (60.0, 75.0)


def test_block_level_of_a_low_tone_does_not_swing_with_its_cycles() -> None:
    t = np.arange(16384) / SR
    tone = np.sin(2 * np.pi * 50 * t)[None]
    level = block_rms_db(tone, 128)  # 2.9 ms blocks, a sixth of a 50 Hz cycle
    assert np.ptp(level[32:-32]) < 0.3  # away from the abrupt ends, whose transform rings
    assert level[len(level) // 2] == pytest.approx(10 * np.log10(0.5), abs=0.2)  # a sine's RMS
    naive = 10 * np.log10(np.square(tone[0, : 128 * 128]).reshape(128, 128).mean(axis=1))
    assert np.ptp(naive) > 10  # what plain block RMS would have done


def test_limit_only_turns_down_what_exceeds_the_bound() -> None:
    clip = decaying(0.2)
    bound = tuple(block_rms_db(clip / np.abs(clip).max(), 1024))
    # Inside its own envelope: untouched, bit for bit.
    assert limit_to_envelope(clip, bound, 1024, 0.0) is clip
    # A bound that falls 30 dB faster: the tail comes down to it, the head stays.
    steep = tuple(b - 30 * k / 7 for k, b in enumerate(bound))
    out = limit_to_envelope(clip, steep, 1024, 0.0)
    level = block_rms_db(out / np.abs(clip).max(), 1024)
    assert level[-1] < bound[-1] - 20
    assert np.abs(out[:, :256] - clip[:, :256]).max() < 0.05 * np.abs(clip).max()
    assert (np.abs(out) <= np.abs(clip) + 1e-7).all()  # never louder anywhere


def test_dc_blocker_removes_an_offset_and_matches_the_recursion() -> None:
    x = (np.random.default_rng(1).standard_normal((1, 12000)) * 0.1 + 0.5).astype(np.float32)
    y = dc_block(x, SR, 10.0)
    r = np.exp(-2 * np.pi * 10.0 / SR)
    ref, prev_x, prev_y = np.zeros(12000), 0.0, 0.0
    for n in range(12000):
        prev_y = x[0, n] - prev_x + r * prev_y
        prev_x, ref[n] = x[0, n], prev_y
    np.testing.assert_allclose(y[0], ref, atol=1e-5)
    assert abs(y[0, 6000:].mean()) < 0.01 < abs(x[0, 6000:].mean())
    assert dc_block(x, SR, 0.0) is x


def test_tail_gate_silences_a_noise_bed_after_the_decay_and_nothing_else() -> None:
    hit = decaying(0.005, length=16384)
    bed = np.random.default_rng(7).standard_normal(hit.shape).astype(np.float32) * 10 ** (-70 / 20)
    clip = hit / np.abs(hit).max() + bed
    out = gate_tail(clip, SR, -60.0, 256, 0.01)
    level = block_rms_db(clip / np.abs(clip).max(), 256)
    last_loud = int(np.nonzero(level > -60)[0][-1])
    end = (last_loud + 1) * 256
    np.testing.assert_array_equal(out[:, :end], clip[:, :end])  # the hit itself is untouched
    assert (out[:, end + int(0.01 * SR) :] == 0).all()  # then digital silence
    assert 0 < end < 16384 // 2
    # Loud to the end (a ringing cymbal), a gate at 0 dB (off), or silence: unchanged.
    ringing = decaying(1.0, length=16384)
    assert gate_tail(ringing, SR, -60.0, 256, 0.01) is ringing
    assert gate_tail(clip, SR, 0.0, 256, 0.01) is clip
    silent = np.zeros((1, 4096), np.float32)
    assert gate_tail(silent, SR, -60.0, 256, 0.01) is silent


def test_finish_gates_the_tail_by_default() -> None:
    hit = decaying(0.005, length=16384)
    clip = (
        hit
        + np.random.default_rng(3).standard_normal(hit.shape).astype(np.float32)
        * 1e-4
        * np.abs(hit).max()
    )
    gated = finish_render(clip.copy(), FinishConfig(), SR, None, 64)
    open_gate = finish_render(clip.copy(), FinishConfig(tail_gate_db=0.0), SR, None, 64)
    assert (gated[:, 8192:] == 0).all()
    assert np.abs(open_gate[:, 8192:]).max() > 1e-5


def test_finish_ramps_in_a_hit_that_starts_at_its_peak_and_keeps_the_rest() -> None:
    step = decaying(0.05, length=8192)
    step *= 0.5 / np.abs(step).max()
    step[:, 0] = 0.9  # a render that starts at full level: a click
    keep = {"dc_cutoff_hz": 0.0, "tail_gate_db": 0.0, "peak": 0.0}
    faded = finish_render(step.copy(), FinishConfig(**keep), SR, None, 64)
    plain = finish_render(step.copy(), FinishConfig(**keep, fade_in_s=0.0), SR, None, 64)
    ramp = int(round(0.001 * SR))
    assert abs(faded[0, 0]) < 0.01 and plain[0, 0] == pytest.approx(0.9)
    assert np.all(np.abs(faded[:, :ramp]) <= np.abs(plain[:, :ramp]) + 1e-7)
    np.testing.assert_allclose(
        faded[:, ramp + 1 : 4096], plain[:, ramp + 1 : 4096], rtol=1e-5, atol=1e-7
    )


def patch_buzz(length: int, period: int, seed: int) -> np.ndarray:
    """A pattern that repeats every `period` samples, slowly fading: a patched network's buzz."""
    pattern = np.random.default_rng(seed).standard_normal(period)
    pattern -= pattern.mean()
    t = np.arange(length) / SR
    return (np.tile(pattern, length // period) * np.exp(-t / 0.4))[None]


def grid_args(period: int = 32) -> tuple[int, int, int, float]:
    cfg = FinishConfig()
    window = int(round(cfg.grid_window_s * SR / period))
    return period, window, int(round(cfg.grid_smooth_s * SR)), cfg.grid_threshold


def test_patch_grid_suppression_removes_a_buzz_under_a_hit() -> None:
    length = 32768
    hits = [decaying(0.08, length=length, seed=s) for s in range(4)]
    buzzed = [h + 0.05 * patch_buzz(length, 32, s) for s, h in enumerate(hits)]
    cleaned = [suppress_patch_grid(b.astype(np.float32), *grid_args()) for b in buzzed]
    before = grid_peaks_db(np.concatenate(buzzed), 32)
    after = grid_peaks_db(np.concatenate(cleaned), 32)
    assert before is not None and after is not None
    assert before > 8.0 and after < before - 6.0
    # Where the hit has died away and the buzz stands out, what is left of it is a small part.
    tail = slice(int(0.3 * SR), None)
    for hit, buzz, clean in zip(hits, buzzed, cleaned):
        left = np.sum((clean - hit)[:, tail] ** 2)
        assert left < 0.05 * np.sum((buzz - hit)[:, tail] ** 2)


def test_patch_grid_suppression_leaves_noise_low_tones_and_tones_between_lines() -> None:
    length = 32768
    t = np.arange(length) / SR
    noise = np.random.default_rng(5).standard_normal((1, length))
    body = np.sin(2 * np.pi * 50 * t) * np.exp(-t / 0.3)  # a kick's body, near DC
    between = np.sin(2 * np.pi * 2100 * t) * np.exp(-t / 0.3)  # between two patch-rate lines
    for audio in (noise, body[None], between[None] + 0.01 * noise):
        out = suppress_patch_grid(audio.astype(np.float32), *grid_args())
        assert np.sum((out - audio) ** 2) < 1e-3 * np.sum(audio**2)
    # A tone sitting on a line is taken for buzz: the price of the cleaning, kept narrow.
    on_line = (np.sin(2 * np.pi * SR / 32 * t) * np.exp(-t / 0.3))[None].astype(np.float32)
    assert np.sum(suppress_patch_grid(on_line, *grid_args()) ** 2) < 0.1 * np.sum(on_line**2)


def test_patch_grid_suppression_never_copies_a_tail_buzz_into_the_attack() -> None:
    length = 32768
    rng = np.random.default_rng(7)
    attack = np.zeros((1, length))
    attack[:, :2000] = rng.standard_normal((1, 2000))  # loud, and free of any buzz
    buzz = 0.01 * patch_buzz(length, 32, 2)
    buzz[:, :8000] = 0.0  # a buzz that only the quiet tail carries
    audio = (attack + buzz).astype(np.float32)
    out = suppress_patch_grid(audio, *grid_args())
    alone = suppress_patch_grid(attack.astype(np.float32), *grid_args())
    head = slice(0, 1500)
    # The attack comes out as it does with no buzz anywhere, and nearly as it went in.
    np.testing.assert_allclose(out[:, head], alone[:, head], atol=1e-5)
    assert np.sum((out - audio)[:, head] ** 2) < 1e-3 * np.sum(audio[:, head] ** 2)
    tail = slice(12000, None)
    assert np.sum((out - attack)[:, tail] ** 2) < 0.05 * np.sum(buzz[:, tail] ** 2)


def test_finish_suppresses_the_grid_only_for_a_patched_network_and_when_on() -> None:
    clip = (decaying(0.08, length=16384) + 0.05 * patch_buzz(16384, 32, 1)).astype(np.float32)
    keep = {"dc_cutoff_hz": 0.0, "tail_gate_db": 0.0, "peak": 0.0, "fade_in_s": 0.0}
    plain = finish_render(clip.copy(), FinishConfig(**keep), SR, None, 64)
    patched = finish_render(clip.copy(), FinishConfig(**keep), SR, None, 64, patch=32)
    off = finish_render(clip.copy(), FinishConfig(**keep, grid_threshold=0.0), SR, None, 64, 32)
    np.testing.assert_array_equal(plain, off)
    assert np.sum((patched - plain) ** 2) > 1e-3 * np.sum(plain**2)


def test_bounds_for_classes_blends_and_the_null_class() -> None:
    cfg = FinishConfig(class_envelopes=((-1.0, -20.0), (-3.0, -10.0), ()))
    assert envelope_bound(cfg, [1, 0, 0, 0]) == (-1.0, -20.0)
    assert envelope_bound(cfg, [0.5, 0.5, 0, 0]) == (-1.0, -10.0)  # the louder of the two
    assert envelope_bound(cfg, [1, 0, 0, 0.5]) is None  # partly unconditional
    assert envelope_bound(cfg, [0, 0, 1, 0]) is None  # a class never measured
    assert envelope_bound(FinishConfig(), [1, 0]) is None


def test_finish_normalises_to_the_configured_peak_or_only_keeps_it_safe() -> None:
    quiet = decaying(0.05) * 0.1
    out = finish_render(quiet.copy(), FinishConfig(), SR, None, 64)
    assert np.abs(out).max() == pytest.approx(0.95, abs=1e-6)
    assert out[0, -1] == 0.0
    raw = finish_render(quiet.copy(), FinishConfig(peak=0.0, dc_cutoff_hz=0.0), SR, None, 64)
    assert np.abs(raw).max() == pytest.approx(np.abs(quiet).max(), rel=1e-6)  # never boosted
    assert normalise_peak(np.zeros((1, 8), np.float32), 0.95).max() == 0.0


def test_render_applies_the_class_limit(tiny_model: LoadedModel) -> None:
    length = tiny_model.config.model.length
    blocks = length // 256
    # A bound that dives 80 dB after the first block, for "kick" only.
    steep = (0.0,) + (-80.0,) * (blocks - 1)
    envelopes = tuple(steep if name == "kick" else () for name in tiny_model.classes)
    finish = dataclasses.replace(
        tiny_model.config.finish, class_envelopes=envelopes, envelope_block=256
    )
    limited = LoadedModel(
        tiny_model.denoiser, dataclasses.replace(tiny_model.config, finish=finish), 0, None
    )
    s = settings_for(tiny_model, steps=3)
    free = render(tiny_model, [5, 5], s, classes=["kick", "snare"])
    held = render(limited, [5, 5], s, classes=["kick", "snare"])
    assert np.abs(held).max(axis=(1, 2)) == pytest.approx([0.95, 0.95], abs=1e-6)
    tail = slice(2 * 256, None)
    assert np.abs(held[0, :, tail]).max() < 0.05 * np.abs(free[0, :, tail]).max()
    np.testing.assert_array_equal(held[1], free[1])  # no bound measured for snare
