"""The dual-branch model: shapes for every backbone pair, optional branches, anchors, presets."""

from __future__ import annotations

import pytest
import torch

from hcld.models import BACKBONES, SIZE_PRESETS, HCLDModel, build_encoder, size_preset


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("speaker_backbone", [None, *BACKBONES])
def test_every_backbone_pair_gives_both_embeddings_and_heads(backbone, speaker_backbone):
    torch.manual_seed(0)
    model = HCLDModel(feat_dim=12, n_speakers=5, backbone=backbone, speaker_backbone=speaker_backbone, model_size="tiny", embed_dim=16)
    out = model(torch.randn(3, 20, 12))
    assert out["xe"].shape == (3, 16) and out["xs"].shape == (3, 16)
    assert out["emo_logits"].shape == (3, 4) and out["spk_logits"].shape == (3, 5)
    expected = type(build_encoder(speaker_backbone or backbone, 12, 16, size_preset("tiny")))
    assert type(model.spk_encoder) is expected
    assert "anchors" not in out


def test_without_speaker_branch_there_is_no_xs():
    model = HCLDModel(feat_dim=8, n_speakers=3, speaker_branch=False, model_size="tiny", embed_dim=8)
    out = model(torch.randn(2, 16, 8))
    assert set(out) == {"xe", "emo_logits"}
    assert model.spk_encoder is None


def test_label_anchors_are_fixed_and_their_projection_is_learned():
    anchors = torch.randn(4, 10)
    model = HCLDModel(feat_dim=8, n_speakers=3, model_size="tiny", embed_dim=6, label_anchors=anchors)
    out = model(torch.randn(2, 16, 8))
    assert out["anchors"].shape == (4, 6)
    out["anchors"].sum().backward()
    assert model.anchor_proj.weight.grad is not None
    assert not any(p is model.label_anchors for p in model.parameters())
    torch.testing.assert_close(model.label_anchors, anchors)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_encoders_pool_over_time_so_any_length_works(backbone):
    enc = build_encoder(backbone, 8, 4, size_preset("tiny"))
    for t in (1, 7, 50, 5000 * 4):  # tiny pools time x4: 5000 steps exceeds the precomputed positions
        assert enc(torch.randn(2, t, 8)).shape == (2, 4)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_gradients_reach_both_encoders(backbone):
    model = HCLDModel(feat_dim=8, n_speakers=3, backbone=backbone, model_size="tiny", embed_dim=8)
    out = model(torch.randn(4, 16, 8))
    (out["emo_logits"].sum() + out["spk_logits"].sum()).backward()
    for enc in (model.emo_encoder, model.spk_encoder):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_presets_grow_from_tiny_to_paper_and_unknown_names_fail():
    def n_params(size):
        return sum(p.numel() for p in HCLDModel(feat_dim=32, n_speakers=4, model_size=size).parameters())

    assert n_params("tiny") < n_params("small") < n_params("paper")
    assert set(SIZE_PRESETS) == {"paper", "small", "tiny"}
    with pytest.raises(ValueError, match="model_size"):
        size_preset("huge")
    with pytest.raises(ValueError, match="backbone"):
        build_encoder("gru", 8, 4, size_preset("tiny"))
