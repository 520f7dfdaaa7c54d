"""Clip loading: mono, 16 kHz, exactly 7.5 s; unusable files raise DataError naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from hcld.data.audio import audio_info, fit_length, load_clip
from hcld.errors import DataError


def _write(path, wave, rate=16000, subtype="FLOAT"):
    sf.write(str(path), wave, rate, subtype=subtype)
    return path


def test_short_clip_is_zero_padded_at_the_end(tmp_path):
    wave = np.linspace(-0.5, 0.5, 32000, dtype=np.float32)
    clip = load_clip(_write(tmp_path / "a.wav", wave))
    assert clip.dtype == np.float32 and clip.shape == (120000,)
    np.testing.assert_array_equal(clip[:32000], wave)
    assert not clip[32000:].any()


def test_long_clip_keeps_the_first_seconds(tmp_path):
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, 16000 * 9).astype(np.float32)
    np.testing.assert_array_equal(load_clip(_write(tmp_path / "a.wav", wave)), wave[:120000])
    assert load_clip(tmp_path / "a.wav", seconds=1.0).shape == (16000,)


def test_stereo_is_averaged_to_mono(tmp_path):
    left = np.full(1000, 0.4, dtype=np.float32)
    right = np.full(1000, -0.2, dtype=np.float32)
    clip = load_clip(_write(tmp_path / "s.wav", np.stack([left, right], axis=1)))
    np.testing.assert_allclose(clip[:1000], 0.1, atol=1e-6)


def test_other_rates_are_resampled_to_16k(tmp_path):
    t = np.arange(8000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    clip = load_clip(_write(tmp_path / "r.wav", tone, rate=8000))
    assert clip.shape == (120000,)
    body = clip[:16000]
    # Still one second of a 440 Hz tone: the spectral peak sits at 440 Hz at the new rate.
    peak = np.argmax(np.abs(np.fft.rfft(body))) * 16000 / len(body)
    assert abs(peak - 440) <= 1 and not clip[16100:].any()


def test_int16_files_are_scaled_to_unit_range(tmp_path):
    wave = np.array([0, 16384, -32768], dtype=np.int16)
    clip = load_clip(_write(tmp_path / "i.wav", wave, subtype="PCM_16"))
    np.testing.assert_allclose(clip[:3], [0.0, 0.5, -1.0])


def test_audio_info_reads_the_header(tmp_path):
    info = audio_info(_write(tmp_path / "a.wav", np.zeros((22050, 2), dtype=np.float32), rate=44100))
    assert (info.sample_rate, info.channels, info.frames) == (44100, 2, 22050)
    assert info.duration_s == pytest.approx(0.5)


@pytest.mark.parametrize("content, message", [
    (None, "missing"), (b"", "empty"), (b"RIFF....WAVEfmt garbage" * 3, "not a readable audio file"),
])
def test_unusable_files_raise_dataerror_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    for fn in (load_clip, audio_info):
        with pytest.raises(DataError, match=message) as err:
            fn(path)
        assert str(path) in str(err.value)


def test_a_file_without_samples_is_rejected(tmp_path):
    path = _write(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(DataError, match="no samples"):
        load_clip(path)
    with pytest.raises(DataError, match="no samples"):
        audio_info(path)


def test_fit_length():
    x = np.arange(5, dtype=np.float32)
    assert fit_length(x, 3).tolist() == [0, 1, 2]
    assert fit_length(x, 7).tolist() == [0, 1, 2, 3, 4, 0, 0]
