"""Reading wav files: header facts for the corpus reader, and fixed-length clips for the extractors.

Everything goes through soundfile (libsndfile). torchaudio.load is avoided on purpose: since
torchaudio 2.9 it needs the separate torchcodec package, which this project does not install.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from hcld.errors import DataError
from hcld.labels import CLIP_SECONDS, SAMPLE_RATE


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: Path | str) -> AudioInfo:
    """Rate, channels and length from the header; DataError (naming the file) if it is unusable."""
    path = Path(path)
    _check_exists(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise DataError(f"{path}: not a readable audio file ({err})") from err
    if info.frames <= 0:
        raise DataError(f"{path}: audio file holds no samples")
    return AudioInfo(sample_rate=int(info.samplerate), channels=int(info.channels), frames=int(info.frames))


def content_problem(path: Path | str) -> str | None:
    """Why the samples of a readable file are unusable, or None: NaN/inf samples (float wavs) would
    poison every feature frame, and a file of digital silence carries neither speaker nor emotion."""
    try:
        wave, _ = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        return f"not a readable audio file ({err})"
    if not np.isfinite(wave).all():
        return f"audio holds {int((~np.isfinite(wave)).sum())} NaN or infinite samples"
    if not wave.any():
        return "audio is digital silence throughout (every sample is 0)"
    return None


def usable_audio(path: Path | str) -> AudioInfo:
    """The header facts of a file the corpus readers would keep; DataError naming the file and
    why not (unreadable, empty, a rate below SAMPLE_RATE, NaN samples, digital silence)."""
    info = audio_info(path)
    if info.sample_rate < SAMPLE_RATE:
        raise DataError(f"{path}: sample rate {info.sample_rate} Hz is below {SAMPLE_RATE} Hz "
                        "(upsampling cannot restore the missing band)")
    bad_samples = content_problem(path)
    if bad_samples:
        raise DataError(f"{path}: {bad_samples}")
    return info


def read_mono(path: Path | str, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The whole file as float32 mono at `sample_rate` (channels averaged, resampled if needed)."""
    path = Path(path)
    _check_exists(path)
    try:
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise DataError(f"{path}: not a readable audio file ({err})") from err
    if wave.shape[0] == 0:
        raise DataError(f"{path}: audio file holds no samples")
    # Averaging channels is safe for IEMOCAP-like recordings (both channels carry the same talker).
    mono = wave.mean(axis=1) if wave.shape[1] > 1 else wave[:, 0]
    if rate != sample_rate:
        mono = resample(mono, rate, sample_rate)
    if not np.isfinite(mono).all():
        raise DataError(f"{path}: audio holds NaN or infinite samples")
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_clip(path: Path | str, *, sample_rate: int = SAMPLE_RATE, seconds: float = CLIP_SECONDS) -> np.ndarray:
    """The first `seconds` of the file as float32 mono, zero-padded at the end when shorter (paper IV-A)."""
    return fit_length(read_mono(path, sample_rate=sample_rate), int(round(sample_rate * seconds)))


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """Trim to n samples, or zero-pad at the end up to n."""
    if len(wave) >= n:
        return wave[:n]
    return np.concatenate([wave, np.zeros(n - len(wave), dtype=wave.dtype)])


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    import torch
    import torchaudio.functional as AF  # imported here: only files at other rates need it

    return AF.resample(torch.from_numpy(np.ascontiguousarray(wave)), rate, target).numpy()


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: audio file is missing")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: audio file is empty (0 bytes)")
