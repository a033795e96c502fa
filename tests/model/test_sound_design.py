"""Sound design: variation, inversion/interpolation, inpainting, morphing, scrubbing, pitch, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from drumdiff_testkit import TINY_CONFIG, make_hit

from drumdiff.model.config import Config
from drumdiff.model.core.checkpoint import LoadedModel, save_checkpoint
from drumdiff.model.core.sampling import SCHEDULED
from drumdiff.model.render.design_defaults import DESIGN_DEFAULTS
from drumdiff.model.render.generate import RenderSettings, render, settings_for
from drumdiff.model.render.sound_design import (
    ModelCache,
    SoundDesignError,
    class_weight_vector,
    extend,
    finish_from_audio,
    fit_audio,
    inpaint,
    interpolate,
    inversion_snr,
    list_checkpoints,
    morph,
    pick_checkpoint,
    pitch_shift,
    pitched_root_note,
    seam_mask,
    slerp,
    snr_db,
    source_bound,
    variation,
)
from drumdiff.model.wav import read_info, read_root_note


def _settings(model: LoadedModel, **kw: object) -> RenderSettings:
    return settings_for(model, **{"steps": 4, **kw})


def _hit(model: LoadedModel, **kw: object) -> np.ndarray:
    """A synthetic hit of the model's length that has died away by its end (as real ones do)."""
    hit = make_hit(frames=model.config.model.length, decay_s=0.008, **kw)  # type: ignore[arg-type]
    return hit


# -- variation --------------------------------------------------------------------------------


def test_variation_at_level_zero_returns_the_input(tiny_model: LoadedModel) -> None:
    hit = _hit(tiny_model)
    out = variation(tiny_model, hit, 0.0, [1, 2, 3], _settings(tiny_model), drum_class="kick")
    assert out.shape == (3, *hit.shape)
    for item in out:
        np.testing.assert_array_equal(item, fit_audio(tiny_model, hit))
    np.testing.assert_array_equal(out[0], hit)


def test_variation_encodes_and_decodes_in_the_class_space(tiny_model: LoadedModel) -> None:
    """With per-class model spaces, a barely noised variation must come back as the input:
    encoding and decoding both use the space of the class asked for."""
    import dataclasses

    d = tiny_model.config.diffusion
    k = len(tiny_model.classes)
    bands = 17
    spectra = tuple(tuple(1.0 / (1 + c) + 0.5 * b / bands for b in range(bands)) for c in range(k))
    blocks = tiny_model.config.model.length // 256
    envelopes = tuple(tuple(0.5 ** (c * n / blocks) for n in range(blocks)) for c in range(k))
    spaced = dataclasses.replace(
        tiny_model.config,
        diffusion=dataclasses.replace(
            d,
            spectrum=(1.0,) * bands,
            spectrum_bands=bands,
            envelope=(1.0,) * blocks,
            envelope_block=256,
            class_spaces=True,
            class_spectra=spectra,
            class_envelopes=envelopes,
        ),
    )
    model = LoadedModel(tiny_model.denoiser, spaced, 0, None)
    hit = _hit(model)
    out = variation(model, hit, 1e-4, [1], _settings(model, sampler="ddim"), drum_class="snare")
    source = fit_audio(model, hit)
    finished = finish_from_audio(
        model,
        source[None],
        [float(np.abs(source).max())],
        [source_bound(model, [source], ["snare"])],
    )[0]
    np.testing.assert_allclose(out[0], finished, atol=2e-3)


@pytest.mark.parametrize("name", SCHEDULED)
def test_variation_is_seeded_and_batch_equals_singles(tiny_model: LoadedModel, name: str) -> None:
    hit, settings = _hit(tiny_model), _settings(tiny_model, sampler=name)
    batch = variation(tiny_model, hit, 0.6, [5, 6], settings, drum_class="snare")
    again = variation(tiny_model, hit, 0.6, [6], settings, drum_class="snare")
    np.testing.assert_allclose(batch[1], again[0], atol=1e-5)
    assert not np.allclose(batch[0], batch[1])
    assert np.isfinite(batch).all() and np.abs(batch).max() <= 0.999 + 1e-6


def test_variation_at_level_one_forgets_the_input(tiny_model: LoadedModel) -> None:
    settings = _settings(tiny_model)
    a = variation(tiny_model, _hit(tiny_model, freq=80.0), 1.0, [9], settings, drum_class="kick")
    b = variation(
        tiny_model, _hit(tiny_model, freq=900.0, seed=4), 1.0, [9], settings, drum_class="kick"
    )
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_variation_refuses_a_bad_level(tiny_model: LoadedModel) -> None:
    with pytest.raises(SoundDesignError, match="level"):
        variation(tiny_model, _hit(tiny_model), 1.5, [1], _settings(tiny_model))


def test_variation_fits_other_lengths_and_rates(tiny_model: LoadedModel) -> None:
    from drumdiff.model.audio import DrumAudio

    stereo_22k = DrumAudio(make_hit(frames=700, sample_rate=22050, channels=2), 22050)
    out = variation(tiny_model, stereo_22k, 0.3, [1], _settings(tiny_model))
    assert out.shape == (1, 1, tiny_model.config.model.length)
    short = variation(tiny_model, _hit(tiny_model), 0.3, [1], _settings(tiny_model, length=1000))
    assert short.shape == (1, 1, 1000)


# -- inversion and interpolation --------------------------------------------------------------


def test_inversion_reconstruction_improves_with_steps(tiny_model: LoadedModel) -> None:
    hit = fit_audio(tiny_model, _hit(tiny_model))
    few, many = (inversion_snr(tiny_model, hit, n) for n in (4, 32))
    assert many > few + 3.0
    refined = inversion_snr(tiny_model, hit, 32, refine=2)
    assert refined > many + 3.0
    assert refined > 20.0


def test_interpolation_endpoints_reproduce_the_inputs(tiny_model: LoadedModel) -> None:
    a, b = _hit(tiny_model, freq=110.0), 0.5 * _hit(tiny_model, freq=420.0, seed=3)
    out = interpolate(tiny_model, a, b, 4, 32, class_a="kick", class_b="snare", refine=2)
    assert out.shape == (4, *a.shape)
    assert snr_db(a, out[0]) > 20.0
    assert snr_db(b, out[-1]) > 20.0
    # the middle is neither input
    assert snr_db(a, out[1]) < 10.0 and snr_db(b, out[2]) < 10.0
    again = interpolate(tiny_model, a, b, 4, 32, class_a="kick", class_b="snare", refine=2)
    np.testing.assert_allclose(out, again, atol=1e-5)  # deterministic: no seeds involved


def test_interpolation_at_chosen_fractions(tiny_model: LoadedModel) -> None:
    a, b = _hit(tiny_model, freq=110.0), _hit(tiny_model, freq=420.0, seed=3)
    full = interpolate(tiny_model, a, b, 3, 8)
    middle = interpolate(tiny_model, a, b, 1, 8, fractions=[0.5])
    np.testing.assert_allclose(full[1], middle[0], atol=1e-5)


def test_slerp_endpoints_and_norm() -> None:
    import torch

    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 4096, generator=gen), torch.randn(1, 4096, generator=gen)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b, atol=1e-5, rtol=1e-5)
    mid = slerp(a, b, 0.5)
    assert abs(float(mid.norm()) - float(a.norm())) < 0.05 * float(a.norm())  # not the lerp dip


# -- inpainting and extension -----------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEDULED)
def test_inpainting_keeps_the_kept_region(tiny_model: LoadedModel, name: str) -> None:
    hit = _hit(tiny_model)
    start, end = 600, 1400
    out = inpaint(
        tiny_model, hit, [1, 2], _settings(tiny_model, sampler=name), regenerate=(start, end)
    )
    for item in out:
        assert np.abs(item[:, :start] - hit[:, :start]).max() < 1e-3
        assert np.abs(item[:, end:] - hit[:, end:]).max() < 1e-3
        assert np.abs(item[:, start:end] - hit[:, start:end]).max() > 1e-2  # it did regenerate
    assert not np.allclose(out[0], out[1])
    assert np.abs(out).max() <= 0.999 + 1e-6


def test_inpainting_with_a_mask_and_seeded(tiny_model: LoadedModel) -> None:
    hit = _hit(tiny_model)
    keep = np.zeros(hit.shape[-1], bool)
    keep[::2] = True  # every other sample kept: the hardest seam there is
    settings = _settings(tiny_model)
    out = inpaint(tiny_model, hit, [4], settings, keep_mask=keep, seam=0)
    assert np.abs(out[0][:, keep] - hit[:, keep]).max() < 1e-3
    again = inpaint(tiny_model, hit, [4], settings, keep_mask=keep, seam=0)
    np.testing.assert_array_equal(out, again)


def test_the_seam_is_a_smooth_ramp_inside_the_new_part() -> None:
    keep = np.zeros(100, bool)
    keep[:40] = True
    soft = seam_mask(keep, 10)
    assert (soft[:40] == 1).all() and (soft[50:] == 0).all()
    assert (np.diff(soft[39:51]) < 0).all()


@pytest.mark.parametrize("keep", ["attack", "tail"])
def test_extension_keeps_its_side(tiny_model: LoadedModel, keep: str) -> None:
    hit = _hit(tiny_model)
    split = 512
    out = extend(
        tiny_model, hit, [3], _settings(tiny_model), keep=keep, split=split, drum_class="kick"
    )
    kept = slice(0, split) if keep == "attack" else slice(split, None)
    new = slice(split, None) if keep == "attack" else slice(0, split)
    assert np.abs(out[0][:, kept] - hit[:, kept]).max() < 1e-3
    assert np.abs(out[0][:, new] - hit[:, new]).max() > 1e-2


def test_extension_grows_a_short_hit(tiny_model: LoadedModel) -> None:
    short = make_hit(frames=800, decay_s=0.01)
    settings = _settings(tiny_model, length=3000)
    out = extend(tiny_model, short, [1], settings, keep="attack", split=800)
    assert out.shape == (1, 1, 3000)
    assert np.abs(out[0][:, :800] - short).max() < 1e-3


def test_inpainting_refuses_bad_ranges(tiny_model: LoadedModel) -> None:
    with pytest.raises(SoundDesignError):
        inpaint(tiny_model, _hit(tiny_model), [1], _settings(tiny_model), regenerate=(500, 400))
    with pytest.raises(SoundDesignError):
        inpaint(tiny_model, _hit(tiny_model), [1], _settings(tiny_model))


# -- morphing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_morph_of_one_class_equals_the_pure_class_render(
    tiny_model: LoadedModel, guidance: float
) -> None:
    settings = _settings(tiny_model, guidance=guidance)
    morphed = morph(tiny_model, {"kick": 1.0, "snare": 0.0}, [7, 8], settings)
    pure = render(tiny_model, [7, 8], settings, classes=["kick", "kick"])
    np.testing.assert_allclose(morphed, pure, atol=1e-6)


def test_morph_weights_are_normalised_and_blend(tiny_model: LoadedModel) -> None:
    settings = _settings(tiny_model)
    a = morph(tiny_model, {"kick": 2.0, "snare": 2.0}, [1], settings)
    b = morph(tiny_model, {"kick": 0.5, "snare": 0.5}, [1], settings)
    np.testing.assert_allclose(a, b, atol=1e-6)
    kick = render(tiny_model, [1], settings, classes=["kick"])
    snare = render(tiny_model, [1], settings, classes=["snare"])
    assert not np.allclose(a, kick, atol=1e-4) and not np.allclose(a, snare, atol=1e-4)
    vec = class_weight_vector(tiny_model, {"kick": 3, None: 1})
    assert vec[0] == pytest.approx(0.75) and vec[-1] == pytest.approx(0.25)


@pytest.mark.parametrize("weights", [{}, {"kick": -1.0}, {"kick": 0.0}, {"cowbell": 1.0}])
def test_morph_refuses_bad_weights(tiny_model: LoadedModel, weights: dict[str, float]) -> None:
    with pytest.raises(SoundDesignError):
        morph(tiny_model, weights, [1], _settings(tiny_model))


# -- checkpoint scrubbing ---------------------------------------------------------------------


def _run_folder(tmp_path: Path, config: Config, steps: tuple[int, ...]) -> Path:
    from drumdiff.model.core.checkpoint import build_model

    run = tmp_path / "run"
    for step in steps:
        state = build_model(config).net.state_dict()
        save_checkpoint(
            run / "checkpoints" / f"step-{step:07d}.pt",
            config,
            model_state=state,
            ema_state=None,
            step=step,
        )
    (run / "checkpoints" / "notes.txt").write_text("not a checkpoint")
    return run


def test_scrubbing_picks_the_right_checkpoint(tmp_path: Path, tiny_config: Config) -> None:
    run = _run_folder(tmp_path, tiny_config, (3000, 1000, 2000, 10000))
    entries = list_checkpoints(run)
    assert [e.step for e in entries] == [1000, 2000, 3000, 10000]
    assert list_checkpoints(run / "checkpoints") == entries
    assert pick_checkpoint(entries, step=2000).step == 2000
    assert pick_checkpoint(entries, step=2400).step == 2000
    assert pick_checkpoint(entries, step=2500).step == 2000  # a tie goes to the earlier
    assert pick_checkpoint(entries, step=0).step == 1000
    assert pick_checkpoint(entries, step=99999).step == 10000
    assert pick_checkpoint(entries, fraction=0.0).step == 1000
    assert pick_checkpoint(entries, fraction=1.0).step == 10000
    assert pick_checkpoint(entries, fraction=0.2).step == 3000  # 1000 + 0.2 * 9000 = 2800
    with pytest.raises(SoundDesignError):
        pick_checkpoint(entries, step=1, fraction=0.5)
    with pytest.raises(SoundDesignError):
        pick_checkpoint(entries, fraction=1.5)


def test_scrubbing_refuses_folders_without_checkpoints(tmp_path: Path) -> None:
    from drumdiff.model.errors import CheckpointError

    with pytest.raises(CheckpointError):
        list_checkpoints(tmp_path)
    with pytest.raises(CheckpointError):
        pick_checkpoint([], step=1)


def test_model_cache_is_lru(tmp_path: Path, tiny_config: Config) -> None:
    run = _run_folder(tmp_path, tiny_config, (1, 2, 3))
    paths = [e.path for e in list_checkpoints(run)]
    cache = ModelCache(2)
    first = cache.get(paths[0])
    assert cache.get(paths[0]) is first and cache.loads == 1
    assert first.step == 1
    cache.get(paths[1])
    cache.get(paths[0])  # 0 is now the most recent
    cache.get(paths[2])  # evicts 1
    assert [p.name for p in cache.resident()] == [paths[0].name, paths[2].name]
    cache.get(paths[1])
    assert cache.loads == 4


# -- length and pitch -------------------------------------------------------------------------


def test_pitch_by_resampling_and_root_note() -> None:
    sr = 44100
    t = np.arange(4410) / sr
    tone = np.sin(2 * np.pi * 441.0 * t).astype(np.float32)[None]
    up = pitch_shift(tone, sr, 12.0)
    assert abs(up.shape[-1] - 2205) <= 2
    spectrum = np.abs(np.fft.rfft(up[0] * np.hanning(up.shape[-1])))
    peak_hz = np.argmax(spectrum) * sr / up.shape[-1]
    assert abs(peak_hz - 882.0) < 25.0
    batch = pitch_shift(np.stack([tone, tone]), sr, -12.0)
    assert batch.shape[:2] == (2, 1) and abs(batch.shape[-1] - 8820) <= 2
    assert pitched_root_note(12.0) == 72 and pitched_root_note(-2.4, root=36) == 34
    with pytest.raises(SoundDesignError):
        pitched_root_note(100.0)


# -- the CLI ----------------------------------------------------------------------------------


def _info(path: Path) -> dict[str, object]:
    return json.loads(read_info(path)["ICMT"])


def test_cli_writes_each_operation_with_its_parameters(tmp_path: Path, write_audio) -> None:  # type: ignore[no-untyped-def]
    from drumdiff.cli import main

    a = write_audio("a.wav", make_hit(frames=3000, decay_s=0.01))
    b = write_audio("b.wav", make_hit(frames=2000, freq=300.0, seed=2, decay_s=0.01))
    out = tmp_path / "out"
    common = ["--config", str(TINY_CONFIG), "--out", str(out), "--steps", "3"]
    assert (
        main(
            [
                "design",
                "vary",
                str(a),
                "--level",
                "0.4",
                "-n",
                "2",
                "--seed",
                "5",
                "--class",
                "kick",
                *common,
            ]
        )
        == 0
    )
    files = sorted(out.glob("a_vary*.wav"))
    assert [_info(f)["seed"] for f in files] == [5, 6]
    assert _info(files[0])["level"] == 0.4 and _info(files[0])["op"] == "vary"

    assert main(["design", "interpolate", str(a), str(b), "-n", "3", "--pitch", "12", *common]) == 0
    files = sorted(out.glob("a_to_b_*.wav"))
    assert [_info(f)["fraction"] for f in files] == [0.0, 0.5, 1.0]
    assert read_root_note(files[0]) == 72
    assert sf.info(str(files[0])).frames < 2048  # an octave up is half as long
    # Without --steps the inversion takes the daemon's default, not the model's render steps.
    plain = ["--config", str(TINY_CONFIG), "--out", str(out / "plain")]
    assert main(["design", "interpolate", str(a), str(b), "-n", "2", *plain]) == 0
    (first, *_) = sorted((out / "plain").glob("a_to_b_*.wav"))
    assert _info(first)["steps"] == DESIGN_DEFAULTS.interpolate_steps
    assert _info(first)["guidance"] == DESIGN_DEFAULTS.interpolate_guidance

    assert (
        main(
            [
                "design",
                "inpaint",
                str(a),
                "--range",
                "0.01",
                "0.03",
                "--seed",
                "1",
                "-n",
                "1",
                *common,
            ]
        )
        == 0
    )
    (inp,) = out.glob("a_inpaint*.wav")
    assert _info(inp)["range_s"] == [0.01, 0.03]
    assert (
        main(
            [
                "design",
                "inpaint",
                str(a),
                "--keep-attack",
                "0.01",
                "-n",
                "1",
                "--seed",
                "1",
                *common,
            ]
        )
        == 0
    )
    assert _info(next(out.glob("a_keepattack*.wav")))["keep"] == "attack"

    assert (
        main(
            [
                "design",
                "morph",
                "--mix",
                "kick=3",
                "--mix",
                "snare=1",
                "-n",
                "1",
                "--seed",
                "2",
                *common,
            ]
        )
        == 0
    )
    (mor,) = out.glob("morph_*.wav")
    assert _info(mor)["mix"] == {"kick": 0.75, "snare": 0.25}

    assert main(["design", "morph", "--mix", "cowbell=1", *common]) == 1
    assert main(["design", "vary", str(a), "--level", "2", *common]) == 1


def test_cli_scrub_lists_and_renders(tmp_path: Path, tiny_config: Config, capsys) -> None:  # type: ignore[no-untyped-def]
    from drumdiff.cli import main

    run = _run_folder(tmp_path, tiny_config, (10, 20, 40))
    assert main(["design", "scrub", str(run), "--list"]) == 0
    assert "step-0000020.pt" in capsys.readouterr().out
    out = tmp_path / "out"
    args = ["--out", str(out), "--steps", "2", "--seed", "3", "-n", "1", "--class", "snare"]
    assert main(["design", "scrub", str(run), "--fraction", "0.5", *args]) == 0
    (path,) = out.glob("*.wav")
    info = _info(path)
    assert info["picked_step"] == 20 and info["step"] == 20 and info["asked_fraction"] == 0.5


# -- finishing of hits made from a user's audio ---------------------------------------------------


def test_finish_from_audio_ends_in_silence_without_dc_at_the_asked_peak(
    tiny_model: LoadedModel,
) -> None:
    sr = tiny_model.sample_rate
    frames = 32768  # a real model's 0.74 s: the offset must be gone well before the end
    rng = np.random.default_rng(0)
    t = np.arange(frames) / sr
    source = (0.8 * np.sin(2 * np.pi * 200 * t) * np.exp(-t / 0.02))[None].astype(np.float32)
    bed = 10 ** (-70 / 20) * rng.standard_normal(frames)  # the faint bed a denoiser leaves
    tick = np.zeros(frames)
    tick[-441:] = 0.2 * np.sin(
        2 * np.pi * 3000 * t[:441]
    )  # and the tick it ends on (-13 dB re peak)
    offset = 3e-3  # -50 dB re peak: above the gate, so without the DC blocker it never closes
    audio = (1.1 * source[0] + bed + tick + offset)[None, None].astype(np.float32)
    bound = source_bound(tiny_model, [source])
    out = finish_from_audio(tiny_model, audio, [0.5], [bound])[0]
    assert abs(float(np.abs(out).max()) - 0.5) < 1e-6
    last = np.nonzero(np.abs(out[0]) > 0)[0][-1]
    assert last < frames // 4  # digital silence after the decay: no offset, no bed, no tick
    # the decay itself is the input's (the 2 Hz blocker barely moves a 200 Hz tone)
    np.testing.assert_allclose(
        out[0, :2000], 0.5 / np.abs(source).max() * source[0, :2000], atol=0.01
    )
    # without the source's envelope the tick stays (the gate alone cannot tell it from a decay)
    unbounded = finish_from_audio(tiny_model, audio, [0.5], [()])[0]
    assert np.abs(unbounded[0, -400:-200]).max() > 0.05


@pytest.mark.parametrize("op", ["vary", "interpolate"])
def test_design_outputs_end_like_renders_at_the_inputs_level(
    tiny_model: LoadedModel, op: str
) -> None:
    hit = 0.5 * _hit(tiny_model)
    settings = _settings(tiny_model)
    if op == "vary":
        out = variation(tiny_model, hit, 0.4, [1, 2], settings, drum_class="kick")
        peaks = [0.5 * 0.8, 0.5 * 0.8]
    else:
        other = _hit(tiny_model, freq=300.0, seed=2)
        out = interpolate(tiny_model, hit, other, 3, 8, class_a="kick", class_b="snare")
        peaks = [0.4, 0.6, 0.8]  # the blend of the two inputs' peaks
    for item, peak in zip(out, peaks):
        assert item[..., -1].max() == 0.0 and item[..., -1].min() == 0.0  # faded to silence
        assert abs(float(np.abs(item).max()) - peak) < 1e-5


def test_inpainting_finishes_a_regenerated_end_but_keeps_the_kept_part(
    tiny_model: LoadedModel,
) -> None:
    hit = _hit(tiny_model)
    out = inpaint(tiny_model, hit, [1], _settings(tiny_model), regenerate=(1000, 2048))[0]
    np.testing.assert_array_equal(out[..., :1000], fit_audio(tiny_model, hit)[..., :1000])
    assert out[..., -1].max() == 0.0 and out[..., -1].min() == 0.0


def test_scrub_names_a_file_given_for_a_run_folder(tmp_path: Path) -> None:
    path = tmp_path / "default.pt"
    path.write_bytes(b"x")
    with pytest.raises(Exception, match="is a checkpoint file, not a run folder"):
        list_checkpoints(path)


def test_cli_files_carry_smpl_never_overwrite_and_errors_are_in_seconds(
    tmp_path: Path,
    write_audio,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    from drumdiff.cli import main

    a = write_audio("a.wav", make_hit(frames=3000, decay_s=0.01))
    out = tmp_path / "out"
    common = [
        "--config",
        str(TINY_CONFIG),
        "--out",
        str(out),
        "--steps",
        "2",
        "--seed",
        "5",
        "-n",
        "1",
    ]
    for _ in range(2):  # the same seed twice: a second file, not a replaced one
        assert main(["design", "vary", str(a), "--level", "0.4", *common]) == 0
    files = sorted(out.glob("a_vary*.wav"))
    assert [f.name for f in files] == ["a_vary0.4_seed5-2.wav", "a_vary0.4_seed5.wav"]
    assert all(read_root_note(f) == 60 for f in files)
    assert main(["design", "morph", "--mix", "kick=1", "--mix", "snare=1", *common]) == 0
    assert read_root_note(next(out.glob("morph_*.wav"))) == 60
    assert "divided by their sum: kick=0.5, snare=0.5" in capsys.readouterr().err
    assert main(["design", "morph", "--mix", "kick=0.3", *common]) == 1
    assert "alone is kick=1" in capsys.readouterr().err
    assert main(["design", "inpaint", str(a), "--range", "0.3", "0.05", *common]) == 1
    assert "--range END (0.05 s) must be after START (0.3 s)" in capsys.readouterr().err
    assert main(["design", "vary", str(tmp_path / "missing.wav"), *common]) == 1
    assert "missing.wav does not exist" in capsys.readouterr().err
