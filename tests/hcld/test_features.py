"""Extractors: frame counts, normalisation, and HuBERT checkpoint handling (small random model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchaudio.compliance import kaldi
from torchaudio.models import hubert_base, wav2vec2_model

from hcld.errors import DataError, MissingAssetError
from hcld.features import hubert as hubert_mod
from hcld.features import make_extractor

SR = 16_000
CLIP = int(SR * 7.5)

# A HuBERT with the real conv strides/kernels (so the frame count is the real one) but tiny widths.
SMALL = {
    "extractor_conv_layer_config": [(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2,
    "encoder_embed_dim": 24, "encoder_num_layers": 2, "encoder_num_heads": 2, "encoder_ff_interm_features": 48,
    "encoder_pos_conv_kernel": 16, "encoder_pos_conv_groups": 4,
}


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    params = {**hubert_mod.base_params(), **SMALL}
    return wav2vec2_model(**params).eval()


def write_small_checkpoint(path, *, plain: bool = False):
    state = small_model().state_dict()
    torch.save(state if plain else {"config": SMALL, "state_dict": state}, path)
    return path


def clips(seconds=(7.5, 3.0), seed=0):
    """Zero-padded clips as load_clip returns them, and their true lengths in samples."""
    rng = np.random.default_rng(seed)
    lengths = np.array([int(s * SR) for s in seconds])
    waves = np.zeros((len(seconds), CLIP), dtype=np.float32)
    for i, n in enumerate(lengths):
        t = np.arange(n) / SR
        waves[i, :n] = 0.3 * np.sin(2 * np.pi * (120 + 40 * i) * t) + 0.05 * rng.standard_normal(n)
    return waves, lengths


def test_fbank_gives_374_frames_of_80_bins_like_hubert():
    ex = make_extractor("fbank")
    assert (ex.n_frames, ex.dim) == (374, 80)
    waves, lengths = clips()
    out = ex(waves, lengths)
    assert out.shape == (2, 374, 80) and out.dtype == np.float32


def test_fbank_without_norm_is_torchaudio_kaldi_fbank_with_a_20ms_hop():
    waves, lengths = clips()
    out = make_extractor("fbank", norm="none")(waves, lengths)
    direct = kaldi.fbank(torch.from_numpy(waves[:1]), num_mel_bins=80, frame_length=25, frame_shift=20,
                         dither=0.0, sample_frequency=SR).numpy()
    np.testing.assert_allclose(out[0], direct, rtol=1e-5, atol=1e-5)


def test_utterance_norm_standardises_each_dimension_and_zeros_padding():
    ex = make_extractor("fbank", norm="utterance")
    waves, lengths = clips()
    out = ex(waves, lengths)
    valid = ex.valid_frames(int(lengths[1]))
    assert valid == 1 + (3 * SR - 400) // 320 == 149
    real = out[1, :valid]
    np.testing.assert_allclose(real.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(real.std(axis=0), 1.0, atol=1e-2)
    assert np.all(out[1, valid:] == 0.0)
    full = out[0]
    np.testing.assert_allclose(full.std(axis=0), 1.0, atol=1e-2)


def test_default_scalar_norm_keeps_the_spectral_shape_and_zeros_padding():
    ex = make_extractor("fbank")
    assert ex.config["norm"] == "scalar"
    waves, lengths = clips()
    out = ex(waves, lengths)
    raw = make_extractor("fbank", norm="none")(waves, lengths)
    valid = ex.valid_frames(int(lengths[1]))
    real, raw_real = out[1, :valid].astype(np.float64), raw[1, :valid].astype(np.float64)
    assert abs(real.mean()) < 1e-4 and abs(real.std() - 1.0) < 1e-3
    assert np.all(out[1, valid:] == 0.0)
    # one affine map for the whole utterance: the per-bin mean profile survives (up to scale/offset)
    profile, raw_profile = real.mean(axis=0), raw_real.mean(axis=0)
    assert np.corrcoef(profile, raw_profile)[0, 1] > 0.9999
    assert profile.std() > 0.1  # unlike per-dimension CMVN, which flattens it to 0


def test_unknown_extractor_and_norm_are_errors():
    with pytest.raises(DataError, match="unknown feature extractor"):
        make_extractor("mfcc")
    with pytest.raises(ValueError, match="normalisation"):
        make_extractor("fbank", norm="global")
    with pytest.raises(DataError, match="only used by the hubert"):
        make_extractor("fbank", checkpoint="x.pth")


def test_hubert_small_checkpoint_gives_374_frames(tmp_path):
    ckpt = write_small_checkpoint(tmp_path / "small.pth")
    ex = make_extractor("hubert", checkpoint=ckpt, device="cpu")
    assert (ex.n_frames, ex.dim) == (374, 24)
    # the conv stack's 400-sample receptive field and 320-sample hop
    assert ex.min_samples() == 400 and (ex.frames(399), ex.frames(400), ex.frames(719), ex.frames(720)) == (0, 1, 1, 2)
    waves, lengths = clips()
    out = ex(waves, lengths)
    assert out.shape == (2, 374, 24)
    assert np.isfinite(out).all()
    # last layer of the model we saved, standardised per utterance (default: one scalar mean/std)
    with torch.inference_mode():
        raw = small_model()(torch.from_numpy(waves[:1]), torch.from_numpy(lengths[:1]))[0].numpy()
    raw = (raw[0] - raw[0].mean()) / np.sqrt(raw[0].var() + 1e-5)
    np.testing.assert_allclose(out[0], raw, atol=2e-3)
    # the key sees the weights, not the path
    assert ex.config["checkpoint_sha256"] == hubert_mod.file_sha256(ckpt)
    assert ex.config["checkpoint_name"] == "small.pth" and str(tmp_path) not in str(ex.config)


def test_hubert_layer_option_selects_an_intermediate_layer(tmp_path):
    ckpt = write_small_checkpoint(tmp_path / "small.pth")
    waves, lengths = clips(seconds=(7.5,))
    first = make_extractor("hubert", checkpoint=ckpt, layer=1)(waves, lengths)
    last = make_extractor("hubert", checkpoint=ckpt)(waves, lengths)
    assert not np.allclose(first, last)
    with pytest.raises(DataError, match="layer 3 out of range"):
        make_extractor("hubert", checkpoint=ckpt, layer=3)


def test_hubert_base_conv_stack_gives_374_frames_for_7_5_s():
    torch.manual_seed(0)
    model = hubert_base().eval()
    with torch.inference_mode():
        conv, _ = model.feature_extractor(torch.zeros(1, CLIP), None)  # the part that sets the frame count
        out, _ = model(torch.zeros(1, SR))  # the whole model, on 1 s to keep the test fast
    assert conv.shape[1] == 374 and tuple(out.shape) == (1, 49, 768)
    n = CLIP
    for _, k, s in hubert_mod.base_params()["extractor_conv_layer_config"]:
        n = (n - k) // s + 1
    assert n == 374


def test_missing_checkpoint_says_what_to_download(tmp_path):
    for ckpt in (None, tmp_path / "nowhere.pth"):
        with pytest.raises(MissingAssetError) as err:
            make_extractor("hubert", checkpoint=ckpt)
        text = str(err.value)
        assert "hubert_fairseq_base_ls960.pth" in text and "HUBERT_BASE" in text and "--checkpoint" in text


def test_plain_state_dict_must_match_hubert_base(tmp_path, monkeypatch):
    ckpt = write_small_checkpoint(tmp_path / "plain.pth", plain=True)
    with pytest.raises(DataError, match="does not match the HuBERT architecture"):
        make_extractor("hubert", checkpoint=ckpt)
    # the same file loads when the architecture it is read into is the small one
    small = {**hubert_mod.base_params(), **SMALL}
    monkeypatch.setattr(hubert_mod, "base_params", lambda: dict(small))
    assert make_extractor("hubert", checkpoint=ckpt).dim == 24


def test_broken_checkpoints_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot be read"):
        make_extractor("hubert", checkpoint=junk)
    bad_cfg = tmp_path / "bad_cfg.pth"
    torch.save({"config": {"embed_dim": 8}, "state_dict": {}}, bad_cfg)
    with pytest.raises(DataError, match="not arguments of"):
        make_extractor("hubert", checkpoint=bad_cfg)
    renamed = tmp_path / "renamed.pth"
    state = {k.replace("encoder.", "enc."): v for k, v in small_model().state_dict().items()}
    torch.save({"config": SMALL, "state_dict": state}, renamed)
    with pytest.raises(DataError, match="does not match"):
        make_extractor("hubert", checkpoint=renamed)
