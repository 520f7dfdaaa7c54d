"""The model: shared trunk or separate encoders, every backbone pair, optional branches, anchors."""

from __future__ import annotations

import pytest
import torch

from hcld.anchors import embed_isometrically
from hcld.config import BACKBONES
from hcld.models import SIZE_PRESETS, HCLDModel, build_encoder, size_preset


def make(**overrides) -> HCLDModel:
    options = dict(feat_dim=8, n_speakers=3, n_emotions=4, backbone="cnn", trunk="shared", speaker_backbone=None,
                   model_size="tiny", embed_dim=8, speaker_branch=True, label_anchors=None,
                   anchor_projection="learned")
    return HCLDModel(**{**options, **overrides})


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("speaker_backbone", [None, *BACKBONES])
def test_separate_encoders_for_every_backbone_pair(backbone, speaker_backbone):
    torch.manual_seed(0)
    model = make(feat_dim=12, n_speakers=5, backbone=backbone, trunk="separate",
                 speaker_backbone=speaker_backbone, embed_dim=16)
    out = model(torch.randn(3, 20, 12))
    assert out["xe"].shape == (3, 16) and out["xs"].shape == (3, 16)
    assert out["emo_logits"].shape == (3, 4) and out["spk_logits"].shape == (3, 5)
    assert type(model.spk_encoder) is type(build_encoder(speaker_backbone or backbone, 12, size_preset("tiny")))
    assert model.spk_encoder is not model.emo_encoder and not model.shares_trunk
    assert "anchors" not in out


@pytest.mark.parametrize("backbone", BACKBONES)
def test_shared_trunk_is_one_encoder_with_two_heads(backbone):
    model = make(backbone=backbone, trunk="shared")
    assert model.shares_trunk
    encoders = [m for m in model.modules() if type(m) is type(model.emo_encoder)]
    assert len(encoders) == 1
    out = model(torch.randn(2, 16, 8))
    assert out["xe"].shape == out["xs"].shape == (2, 8)
    assert not torch.allclose(out["xe"], out["xs"])  # two heads, not one embedding twice
    separate = make(backbone=backbone, trunk="separate")
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(model) < n(separate)


def _speaker_outputs_after_an_xe_only_step(trunk: str, backbone: str) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = make(trunk=trunk, backbone=backbone)
    x = torch.randn(6, 16, 8)
    with torch.no_grad():
        before = model(x)["spk_logits"].clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model(x)["xe"].pow(2).sum().backward()  # a loss on X_e alone
    opt.step()
    with torch.no_grad():
        return before, model(x)["spk_logits"]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_a_loss_on_xe_moves_the_speaker_head_only_through_a_shared_trunk(backbone):
    before, after = _speaker_outputs_after_an_xe_only_step("shared", backbone)
    assert (after - before).abs().max() > 1e-4
    before, after = _speaker_outputs_after_an_xe_only_step("separate", backbone)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_without_speaker_branch_there_is_no_xs():
    model = make(speaker_branch=False)
    out = model(torch.randn(2, 16, 8))
    assert set(out) == {"xe", "emo_logits"}
    assert model.spk_encoder is None


def test_learned_projection_trains_while_the_label_vectors_stay_fixed():
    anchors = torch.randn(4, 10)
    model = make(embed_dim=6, label_anchors=anchors, anchor_projection="learned")
    out = model(torch.randn(2, 16, 8))
    assert out["anchors"].shape == (4, 6)
    out["anchors"].sum().backward()
    assert model.anchor_proj.weight.grad is not None
    assert not any(p is model.label_anchors for p in model.parameters())
    torch.testing.assert_close(model.label_anchors, anchors)


def test_fixed_projection_keeps_the_label_vectors_geometry_and_has_no_parameters():
    anchors = torch.randn(4, 10, generator=torch.Generator().manual_seed(1)) + 2.0  # correlated, like RoBERTa's
    model = make(embed_dim=6, label_anchors=anchors, anchor_projection="fixed")
    got = model(torch.randn(2, 16, 8))["anchors"]
    assert got.shape == (4, 6) and model.anchor_proj is None
    assert not got.requires_grad
    torch.testing.assert_close(got @ got.T, anchors @ anchors.T, rtol=1e-5, atol=1e-4)


def test_isometric_embedding_needs_as_many_dimensions_as_anchors():
    anchors = torch.randn(4, 10, dtype=torch.float64)
    out = embed_isometrically(anchors, 4)
    torch.testing.assert_close(out @ out.T, anchors @ anchors.T)
    with pytest.raises(ValueError, match="need >= 4"):
        embed_isometrically(anchors, 3)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_encoders_pool_over_time_so_any_length_works(backbone):
    enc = build_encoder(backbone, 8, size_preset("tiny"))
    for t in (1, 7, 50, 5000 * 4):  # tiny pools time x4: 5000 steps exceeds the precomputed positions
        assert enc(torch.randn(2, t, 8)).shape == (2, enc.pooled_dim)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_encoder_runs_and_trains_under_cpu_bf16_autocast(backbone):
    """precision=bf16 on a CPU: oneDNN's bf16 LSTM needs AVX512-BF16, which many CPUs lack."""
    enc = build_encoder(backbone, 8, size_preset("tiny"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pooled = enc(torch.randn(2, 16, 8))
    pooled.float().sum().backward()
    assert torch.isfinite(pooled).all()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


@pytest.mark.parametrize("trunk", ["shared", "separate"])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_gradients_reach_every_encoder(backbone, trunk):
    model = make(backbone=backbone, trunk=trunk)
    out = model(torch.randn(4, 16, 8))
    (out["emo_logits"].sum() + out["spk_logits"].sum()).backward()
    for enc in (model.emo_encoder, model.spk_encoder):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_presets_grow_from_tiny_to_paper():
    def n_params(size):
        return sum(p.numel() for p in make(feat_dim=32, n_speakers=4, model_size=size).parameters())

    assert n_params("tiny") < n_params("small") < n_params("paper")
    assert set(SIZE_PRESETS) == {"paper", "small", "tiny"}
