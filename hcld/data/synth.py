"""A procedural stand-in for IEMOCAP, written in the release layout so the real reader reads it.

Ten speakers (Ses01F ... Ses05M), four emotions in IEMOCAP's class proportions, plus some
utterances with labels the reader drops (fru, xxx, ...) and "exc" for part of the happy class,
so the exc->hap merge and the label filter are exercised on every run.

Speech is a source-filter model, synthesised frame by frame (16 ms hop, 32 ms FFT, overlap-add):

- speaker = timbre: fundamental range, vocal-tract length (all formants scaled), formant
  bandwidths, an extra high resonance, spectral tilt and breathiness, fixed per speaker;
- emotion = prosody: pitch level, range and contour, loudness, syllable rate, pauses,
  jitter and shimmer, drawn per utterance around the emotion's mean.

Every utterance also gets its own random level, vowels, syllable timing and background noise,
and the emotion means overlap, so neither emotion nor speaker is trivially separable (a linear
probe on mean log-mel fbank lands well below 100% on both; see tests/hcld/test_synth.py).
Numpy only; deterministic per seed (each utterance has its own seeded generator).
"""

from __future__ import annotations

import math
import wave as wave_module
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hcld.labels import EMOTIONS, IEMOCAP_COUNTS, SAMPLE_RATE, SESSIONS

SR = SAMPLE_RATE
HOP = 256   # synthesis hop (16 ms): control tracks live on this grid
NFFT = 512  # 50% overlap with a periodic Hann window sums to one: plain overlap-add reconstructs

# Share of IEMOCAP's happy class labelled "exc" in the release (1041 exc + 595 hap = 1636).
EXC_SHARE = 1041 / 1636
# Labels the reader must drop, with rough release frequencies; these do not count toward `utterances`.
DROPPED_LABELS = {"fru": 0.45, "xxx": 0.35, "sur": 0.07, "fea": 0.05, "oth": 0.05, "dis": 0.03}
DROPPED_SHARE = 0.15

# Adult male vowel formants F1..F3 (Hz, Peterson & Barney); F4, F5 added as fixed higher resonances.
_VOWELS = np.array([
    [730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480],
    [570, 840, 2410], [660, 1720, 2410], [490, 1350, 1690], [440, 1020, 2240],
], dtype=np.float64)
_BANDWIDTHS = np.array([80.0, 100.0, 140.0, 200.0, 260.0])
_FREQS = np.fft.rfftfreq(NFFT, 1 / SR)
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(NFFT) / NFFT)).astype(np.float32)


def _rosenberg(n: int = 1024, rise: float = 0.40, fall: float = 0.16) -> np.ndarray:
    """One period of the glottal flow derivative (Rosenberg pulse), unit RMS, starting and ending at 0."""
    x = np.arange(n) / n
    flow = np.where(x < rise, 0.5 * (1 - np.cos(np.pi * x / rise)),
                    np.where(x < rise + fall, np.cos(0.5 * np.pi * (x - rise) / fall), 0.0))
    d = np.diff(flow, prepend=0.0)
    return (d / np.sqrt(np.mean(d ** 2))).astype(np.float32)


_PULSE = _rosenberg()
_PULSE_N = len(_PULSE)
_OPEN = 0.56  # open phase of the pulse: aspiration is strongest while the glottis is open


@dataclass(frozen=True)
class Speaker:
    name: str          # Ses01F
    f0: float          # median fundamental, Hz
    vtl: float         # formant scale (shorter vocal tract -> higher formants)
    bw: float          # formant bandwidth scale
    tilt: float        # extra spectral tilt, dB per octave
    breath: float      # aspiration noise relative to the voiced source
    f4: float          # speaker-specific high resonance, Hz
    f4_gain: float     # its strength


@dataclass(frozen=True)
class Prosody:
    f0_scale: float    # pitch level relative to the speaker's median
    f0_range: float    # accent size, octaves
    slope: float       # pitch contour over the utterance, octaves (negative = falling)
    gain_db: float     # loudness
    rate: float        # syllables per second
    pause: float       # chance that a syllable slot is a pause
    jitter: float      # cycle-to-cycle f0 perturbation
    shimmer: float     # cycle-to-cycle amplitude perturbation
    breath: float      # added breathiness


# Mean prosody per emotion; every field is drawn per utterance with wide spread (see _draw_prosody).
EMOTION_PROSODY: dict[str, Prosody] = {
    "ang": Prosody(1.22, 0.30, -0.30, 6.0, 5.2, 0.06, 0.020, 0.14, 0.00),
    "hap": Prosody(1.18, 0.38, +0.20, 3.0, 4.8, 0.08, 0.012, 0.09, 0.02),
    "neu": Prosody(1.00, 0.14, -0.10, 0.0, 4.2, 0.10, 0.008, 0.06, 0.00),
    "sad": Prosody(0.90, 0.10, -0.18, -4.0, 3.2, 0.18, 0.016, 0.12, 0.10),
}
# Typical valence/activation/dominance (1-5) per raw label, for the "[V, A, D]" column.
_VAD = {"ang": (1.8, 4.0, 3.8), "hap": (3.8, 3.2, 2.9), "exc": (4.0, 3.7, 3.2), "neu": (2.7, 2.4, 2.6),
        "sad": (2.0, 2.2, 2.3)}
_CATEGORY_NAME = {"ang": "Anger", "hap": "Happiness", "exc": "Excited", "neu": "Neutral", "sad": "Sadness",
                  "fru": "Frustration", "xxx": "Other", "sur": "Surprise", "fea": "Fear", "oth": "Other",
                  "dis": "Disgust"}


def write_synthetic_corpus(out_dir: Path, *, utterances: int = 1000, seed: int = 0, progress: bool = False) -> Path:
    """Write an IEMOCAP-layout tree with `utterances` kept utterances (ang/hap/neu/sad); return out_dir."""
    if utterances < 2 * len(SESSIONS):
        raise ValueError(f"utterances must be at least {2 * len(SESSIONS)} (one per speaker), got {utterances}")
    out_dir = Path(out_dir)
    layout = np.random.default_rng([seed, 0])
    speakers = _draw_speakers(layout)
    plan = _plan(layout, speakers, utterances)

    items = enumerate(plan)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, total=len(plan), desc="synthesising", unit="utt")
    by_dialog: dict[tuple[int, str], list[dict]] = {}
    made: set[Path] = set()
    for i, utt in items:
        rng = np.random.default_rng([seed, 1, i])
        wave = synthesise(rng, speakers[utt["speaker"]], utt["emotion"], utt["seconds"])
        wav = out_dir / f"Session{utt['session']}" / "sentences" / "wav" / utt["dialog"] / f"{utt['utt_id']}.wav"
        if wav.parent not in made:
            wav.parent.mkdir(parents=True, exist_ok=True)
            made.add(wav.parent)
        write_wav(wav, wave)
        by_dialog.setdefault((utt["session"], utt["dialog"]), []).append(utt)

    for (session, dialog), utts in by_dialog.items():
        _write_label_files(out_dir / f"Session{session}" / "dialog" / "EmoEvaluation", dialog, utts, layout)
    return out_dir


def _draw_speakers(rng: np.random.Generator) -> list[Speaker]:
    out = []
    for session in SESSIONS:
        for gender in "FM":
            female = gender == "F"
            out.append(Speaker(
                name=session + gender,
                f0=rng.uniform(185, 245) if female else rng.uniform(95, 140),
                vtl=rng.uniform(1.08, 1.22) if female else rng.uniform(0.92, 1.06),
                bw=rng.uniform(0.8, 1.5),
                tilt=rng.uniform(-4.0, 1.0),
                breath=rng.uniform(0.03, 0.35),
                f4=rng.uniform(3000, 4200),
                f4_gain=rng.uniform(0.2, 1.5),
            ))
    return out


def _class_counts(n: int) -> dict[str, int]:
    """IEMOCAP's proportions scaled to n (largest remainder, so they sum to n exactly)."""
    total = sum(IEMOCAP_COUNTS.values())
    exact = {e: n * IEMOCAP_COUNTS[e] / total for e in EMOTIONS}
    counts = {e: math.floor(v) for e, v in exact.items()}
    for e in sorted(EMOTIONS, key=lambda e: counts[e] - exact[e])[: n - sum(counts.values())]:
        counts[e] += 1
    return counts


def _plan(rng: np.random.Generator, speakers: list[Speaker], n: int) -> list[dict]:
    """Who says what with which label, in which dialog, under which id."""
    counts = _class_counts(n)
    emotions = [e for e in EMOTIONS for _ in range(counts[e])]
    # Dealing speakers round-robin over the emotion-sorted list gives every speaker the same mix.
    speaker_of = rng.permutation(len(speakers))[np.arange(n) % len(speakers)]
    labels = [("exc" if rng.random() < EXC_SHARE else "hap") if e == "hap" else e for e in emotions]
    n_drop = int(round(DROPPED_SHARE * n))
    drop_labels = rng.choice(list(DROPPED_LABELS), size=n_drop, p=np.array(list(DROPPED_LABELS.values())))
    utts = [{"emotion": e, "label": lab, "speaker": int(s)} for e, lab, s in zip(emotions, labels, speaker_of)]
    utts += [{"emotion": str(rng.choice(EMOTIONS)), "label": str(lab), "speaker": int(rng.integers(len(speakers)))}
             for lab in drop_labels]
    order = rng.permutation(len(utts))
    utts = [utts[i] for i in order]
    for u in utts:
        kept = u["label"] not in DROPPED_LABELS
        # Kept utterances last 2-7.5 s (a few run past the 7.5 s clip, as in the release); dropped ones are short.
        u["seconds"] = float(2.0 + 6.0 * rng.beta(2.0, 2.6)) if kept else float(rng.uniform(1.0, 2.0))

    plan = []
    for s, session in enumerate(SESSIONS, start=1):
        mine = [u for u in utts if speakers[u["speaker"]].name.startswith(session)]
        n_dialogs = max(2, math.ceil(len(mine) / 30))
        dialogs = [_dialog_name(s, d) for d in range(n_dialogs)]
        numbers: dict[tuple[str, str], int] = {}
        clock = {d: 0.0 for d in dialogs}
        for j, u in enumerate(mine):
            dialog = dialogs[j % n_dialogs]
            gender = speakers[u["speaker"]].name[-1]
            k = numbers.get((dialog, gender), 0)
            numbers[(dialog, gender)] = k + 1
            start = clock[dialog] + float(rng.uniform(0.3, 3.0))
            clock[dialog] = start + u["seconds"]
            plan.append({**u, "session": s, "dialog": dialog, "utt_id": f"{dialog}_{gender}{k:03d}",
                         "start": start, "end": start + u["seconds"]})
    return plan


def _dialog_name(session: int, d: int) -> str:
    owner = "FM"[d % 2]
    number = d // 4 + 1
    return f"Ses0{session}{owner}_impro{number:02d}" if (d // 2) % 2 == 0 else \
        f"Ses0{session}{owner}_script{number:02d}_1"


def _write_label_files(emo_dir: Path, dialog: str, utts: list[dict], rng: np.random.Generator) -> None:
    """The top-level consensus file in the release's format, plus an annotator file in Categorical/."""
    emo_dir.mkdir(parents=True, exist_ok=True)
    (emo_dir / "Categorical").mkdir(exist_ok=True)
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    cat_lines = []
    for u in sorted(utts, key=lambda u: u["start"]):
        vad = np.clip(np.array(_VAD.get(u["label"], (3.0, 3.0, 3.0))) + rng.normal(0, 0.4, 3), 1, 5)
        vad = np.round(vad * 2) / 2
        name = _CATEGORY_NAME[u["label"]]
        lines.append(f"[{u['start']:.4f} - {u['end']:.4f}]\t{u['utt_id']}\t{u['label']}\t"
                     f"[{vad[0]:.4f}, {vad[1]:.4f}, {vad[2]:.4f}]")
        lines += [f"C-E2:\t{name};\t()", f"C-E3:\t{name};\t()", f"C-F1:\t{name};\t()",
                  f"A-E3:\tval {int(vad[0])}; act {int(vad[1])}; dom  {int(vad[2])};\t()",
                  f"A-F1:\tval {int(vad[0])}; act {int(vad[1])}; dom  {int(vad[2])};\t()", ""]
        cat_lines.append(f"{u['utt_id']} :{name}; ()")
    (emo_dir / f"{dialog}.txt").write_text("\n".join(lines) + "\n")
    (emo_dir / "Categorical" / f"{dialog}_e2_cat.txt").write_text("\n".join(cat_lines) + "\n")


def _draw_prosody(rng: np.random.Generator, emotion: str) -> Prosody:
    m = EMOTION_PROSODY[emotion]
    ln = lambda s: float(np.exp(rng.normal(0.0, s)))  # noqa: E731 - multiplicative spread
    return Prosody(
        f0_scale=m.f0_scale * ln(0.10),
        f0_range=m.f0_range * ln(0.35),
        slope=m.slope + rng.normal(0.0, 0.12),
        gain_db=m.gain_db + rng.normal(0.0, 3.0),
        rate=m.rate * ln(0.15),
        pause=float(np.clip(m.pause + rng.normal(0.0, 0.04), 0.0, 0.4)),
        jitter=m.jitter * ln(0.3),
        shimmer=m.shimmer * ln(0.3),
        breath=m.breath,
    )


_RAMP = np.arange(HOP) / HOP


def _upsample(v: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Frame track -> samples (linear between frame centres at HOP * (j + 1)), length len(v) * HOP + NFFT."""
    out = np.empty(len(v) * HOP + NFFT, dtype=dtype)
    out[:HOP] = v[0]
    out[HOP: len(v) * HOP].reshape(len(v) - 1, HOP)[:] = v[:-1, None] + np.diff(v)[:, None] * _RAMP[None, :]
    out[len(v) * HOP:] = v[-1]
    return out


def write_wav(path: Path, wave: np.ndarray) -> None:
    """16 kHz mono PCM-16 via the standard library: soundfile's close() fsyncs every file, which
    costs more than synthesising it."""
    pcm = np.round(np.clip(wave, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave_module.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())


def synthesise(rng: np.random.Generator, spk: Speaker, emotion: str, seconds: float) -> np.ndarray:
    """One utterance as float32 in [-1, 1]."""
    p = _draw_prosody(rng, emotion)
    # A voice is never identical twice (posture, effort, microphone distance): timbre varies a little.
    spk = replace(spk, vtl=spk.vtl * float(np.exp(rng.normal(0, 0.04))), tilt=spk.tilt + rng.normal(0, 2.0),
                  breath=spk.breath * float(np.exp(rng.normal(0, 0.3))),
                  f4_gain=spk.f4_gain * float(np.exp(rng.normal(0, 0.3))))
    n = int(seconds * SR)
    nf = n // HOP + 2
    t = np.arange(nf) / nf

    # Syllable grid: slot lengths in frames, some slots are pauses; consonant onset then vowel.
    per_syll = SR / HOP / p.rate
    lengths = np.maximum(3, np.round(per_syll * np.exp(rng.normal(0, 0.3, nf // 2 + 2)))).astype(int)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    keep = starts < nf
    starts, lengths = starts[keep], lengths[keep]
    ns = len(starts)
    syl = np.searchsorted(starts, np.arange(nf), side="right") - 1
    pos = (np.arange(nf) - starts[syl]) / lengths[syl]
    pause = rng.random(ns) < p.pause
    pause[0] = False
    cons = rng.uniform(0.15, 0.35, ns)
    voiced_f = ((pos >= cons[syl]) & ~pause[syl]).astype(np.float64)
    fric_f = ((pos < cons[syl]) & ~pause[syl] & (rng.random(ns) < 0.6)[syl]).astype(np.float64)
    amp_f = np.where(voiced_f > 0, np.sin(np.pi * np.clip((pos - cons[syl]) / (1 - cons[syl]), 0, 1)) ** 0.5, 0.0)
    amp_f *= np.exp(rng.normal(0, 0.25, ns))[syl]  # syllable stress

    # Pitch: speaker median x emotion level, contour over the utterance, per-syllable accents, slow drift.
    accent = rng.normal(0, 1, ns)[syl] * p.f0_range * np.sin(np.pi * pos)
    drift = np.cumsum(rng.normal(0, 0.02, nf))
    f0_f = spk.f0 * p.f0_scale * 2.0 ** (p.slope * (t - 0.5) + accent + drift - drift.mean())
    f0_f = np.clip(f0_f, 55.0, 520.0)

    # Formant tracks: one vowel per syllable, scaled by the speaker's tract, smoothed across frames.
    vowel = _VOWELS[rng.integers(len(_VOWELS), size=ns)][syl] * spk.vtl
    for _ in range(2):
        vowel = np.concatenate([vowel[:1], vowel, vowel[-1:]])
        vowel = 0.25 * vowel[:-2] + 0.5 * vowel[1:-1] + 0.25 * vowel[2:]

    # Sample-rate source: Rosenberg glottal pulses (table lookup) with jitter and shimmer, one noise
    # buffer for aspiration (voiced parts) and frication (consonants, which are unvoiced).
    total = nf * HOP + NFFT
    phase = np.cumsum(_upsample(f0_f)) / SR
    cycle = phase.astype(np.int64)
    # Jitter delays each pulse by a random part of its period (the closed phase leaves room for it).
    frac = phase - cycle - p.jitter * np.abs(rng.standard_normal(cycle[-1] + 1))[cycle]
    idx = np.clip((frac * _PULSE_N).astype(np.int64), 0, _PULSE_N - 1)
    source = _PULSE[idx] * (1.0 + p.shimmer * rng.standard_normal(cycle[-1] + 1, dtype=np.float32))[cycle]
    noise = rng.standard_normal(total, dtype=np.float32)
    voiced = _upsample(voiced_f * amp_f, np.float32)
    breath = (spk.breath + p.breath) * np.where(frac < _OPEN, 1.0, 0.4).astype(np.float32)
    excitation = voiced * source + noise * (voiced * breath + 0.35 * _upsample(fric_f, np.float32))

    # Frame-wise filtering: cascade of formant resonances (|H| of 2nd-order sections) and tilt.
    # F4, F5, the speaker's extra resonance and the tilt do not change over time: one vector each.
    f2 = _FREQS[None, :] ** 2
    denom = np.ones((nf, len(_FREQS)))
    numer = np.ones((nf, 1))
    for k in range(3):
        fk2 = vowel[:, k: k + 1] ** 2
        denom *= (fk2 - f2) ** 2 + (_BANDWIDTHS[k] * spk.bw) ** 2 * f2
        numer *= fk2
    fixed = np.ones(len(_FREQS))
    for k, fk in ((3, 3500.0 * spk.vtl), (4, 4500.0 * spk.vtl)):
        fixed *= fk ** 2 / np.sqrt((fk ** 2 - f2[0]) ** 2 + (_BANDWIDTHS[k] * spk.bw) ** 2 * f2[0])
    fixed *= 1.0 + spk.f4_gain * np.exp(-0.5 * ((_FREQS - spk.f4) / 250.0) ** 2)
    fixed *= (np.maximum(_FREQS, 100.0) / 500.0) ** (spk.tilt / 6.02)
    fric_env = 3.0 / (1.0 + (rng.uniform(2000, 4500) / np.maximum(_FREQS, 50.0)) ** 4)
    env = ((voiced_f[:, None] * (numer / np.sqrt(denom)) + (1 - voiced_f[:, None]) * fric_env)
           * fixed).astype(np.float32)

    frames = np.lib.stride_tricks.sliding_window_view(excitation, NFFT)[::HOP][:nf] * _WINDOW
    out_frames = np.fft.irfft(np.fft.rfft(frames, axis=1) * env, n=NFFT, axis=1)
    half = NFFT // 2
    out = np.zeros((nf + 1, half))
    out[:-1] += out_frames[:, :half]
    out[1:] += out_frames[:, half:]
    wave = out.reshape(-1)[half: half + n]

    # Level: emotion loudness plus a random recording level; then a noise floor that does not follow it.
    rms = np.sqrt(np.mean(wave ** 2)) + 1e-9
    level_db = -26.0 + p.gain_db + rng.normal(0.0, 3.0)
    wave *= 10 ** (level_db / 20) / rms
    wave += 10 ** (rng.uniform(-62, -48) / 20) * noise[::-1][:n]  # reversed: uncorrelated with the speech
    return np.clip(wave, -1.0, 1.0).astype(np.float32)
