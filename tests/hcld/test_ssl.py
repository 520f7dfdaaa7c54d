"""The ssl extractor on tiny random transformers models saved with save_pretrained, checked against
the models' own forward pass; the store's size line and disk check; LayerMix; the CLI options.

The models use the real conv stack (kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2) with 16 channels:
a 7.5 s clip gives the real 374 frames and stays cheap, whereas a 2-layer stack with stride 10
would give 12k frames, and WavLM's attention over them takes a minute on a CPU.
"""

from __future__ import annotations

import shutil
from collections import namedtuple

import numpy as np
import pytest
import torch
from test_feature_store import write_manifest
from test_features import clips

from hcld.errors import DataError, MissingAssetError
from hcld.features import extract_features, make_extractor
from hcld.features.store import feature_key
from hcld.models import LayerMix

SR = 16_000
CLIP = int(SR * 7.5)
N_LAYERS, HIDDEN = 2, 16
SMALL = {"hidden_size": HIDDEN, "num_hidden_layers": N_LAYERS, "num_attention_heads": 2, "intermediate_size": 32,
         "conv_dim": (16,) * 7, "conv_kernel": (10, 3, 3, 3, 3, 2, 2), "conv_stride": (5, 2, 2, 2, 2, 2, 2),
         "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2}
# data2vec-audio: a stack of `num_conv_pos_embeddings` positional conv layers of width conv_pos_kernel_size
DATA2VEC = {**SMALL, "num_conv_pos_embeddings": 2, "conv_pos_kernel_size": 5}
MODEL_TYPES = ("wavlm", "wav2vec2", "hubert", "data2vec-audio")


def save_model(folder, model_type: str, *, seed: int = 0, mask: bool | None = None, processor: bool = True,
               config: dict | None = None):
    """A randomly initialised model (and its Wav2Vec2FeatureExtractor) saved as a local upstream folder.
    Like the real checkpoints: the GroupNorm ('base') models want no attention mask, data2vec-audio does.
    `config` replaces SMALL (e.g. more layers)."""
    from transformers import (
        AutoModel,
        Data2VecAudioConfig,
        HubertConfig,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        WavLMConfig,
    )

    small = config or SMALL
    configs = {"wavlm": WavLMConfig(**small), "wav2vec2": Wav2Vec2Config(**small),
               "hubert": HubertConfig(**small), "data2vec-audio": Data2VecAudioConfig(**(config or DATA2VEC))}
    torch.manual_seed(seed)
    model = AutoModel.from_config(configs[model_type]).eval()
    model.save_pretrained(folder)
    if processor:
        want_mask = model_type == "data2vec-audio" if mask is None else mask
        Wav2Vec2FeatureExtractor(return_attention_mask=want_mask, do_normalize=True).save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory):
    """model type -> (folder, the model object that was saved there)."""
    root = tmp_path_factory.mktemp("upstreams")
    return {t: (root / t, save_model(root / t, t)) for t in MODEL_TYPES}


def direct_frames(model, wave: np.ndarray, n: int, layer: int, *, mask: bool) -> np.ndarray:
    """The independent path: normalise the valid samples, zero-pad, run the model, take hidden_states[layer]
    over the valid frames and standardise them (one scalar mean/std, the default norm)."""
    x = wave[:n].astype(np.float64)
    padded = np.zeros(CLIP, dtype=np.float32)
    padded[:n] = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    kwargs = {}
    if mask:
        kwargs["attention_mask"] = (torch.arange(CLIP) < n).long()[None]
    with torch.inference_mode():
        hidden = model(torch.from_numpy(padded)[None], output_hidden_states=True, **kwargs).hidden_states[layer][0]
    valid = int(model._get_feat_extract_output_lengths(torch.tensor(n)))
    h = hidden[:valid].double().numpy()
    return (h - h.mean()) / np.sqrt(h.var() + 1e-5)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_frames_are_the_models_hidden_states_over_valid_frames(upstreams, model_type):
    folder, model = upstreams[model_type]
    ex = make_extractor("ssl", upstream=folder, layer=1, device="cpu")
    assert ex.config["model_type"] == model_type and ex.attention_mask == (model_type == "data2vec-audio")
    assert (ex.n_frames, ex.dim) == (374, HIDDEN)
    for n in (400, 401, 719, 720, 48_000, CLIP):
        assert ex.frames(n) == int(model._get_feat_extract_output_lengths(torch.tensor(n)))
    assert ex.frames(ex.min_samples()) == 1 and ex.frames(ex.min_samples() - 1) == 0
    waves, lengths = clips()
    out = ex(waves, lengths)
    assert out.shape == (2, 374, HIDDEN) and np.isfinite(out).all()
    for i, n in enumerate(lengths):
        expected = direct_frames(model, waves[i], int(n), 1, mask=ex.attention_mask)
        valid = expected.shape[0]
        assert valid == ex.valid_frames(int(n)) == (374 if i == 0 else 149)
        np.testing.assert_allclose(out[i, :valid], expected, atol=2e-3)
        assert np.all(out[i, valid:] == 0.0)


def test_layers_stack_hidden_states_each_normalised_on_its_own(upstreams):
    folder, model = upstreams["wavlm"]
    waves, lengths = clips()
    both = make_extractor("ssl", upstream=folder, layers=(1, 2))
    assert (both.dim, both.layer_dim, both.layers) == (2 * HIDDEN, HIDDEN, (1, 2))
    out = both(waves, lengths)
    assert out.shape == (2, 374, 2 * HIDDEN)
    for chunk, layer in enumerate((1, 2)):
        single = make_extractor("ssl", upstream=folder, layer=layer)(waves, lengths)
        np.testing.assert_allclose(out[..., chunk * HIDDEN:(chunk + 1) * HIDDEN], single, atol=1e-5)
        real = out[1, :149, chunk * HIDDEN:(chunk + 1) * HIDDEN].astype(np.float64)
        assert abs(real.mean()) < 1e-4 and abs(real.std() - 1) < 1e-3
    # the default is the last layer; hidden_states[0] (the projected CNN output) is a layer too
    last = make_extractor("ssl", upstream=folder)
    assert last.layers == (N_LAYERS,) and last.config["layers"] == [N_LAYERS]
    np.testing.assert_allclose(last(waves, lengths), out[..., HIDDEN:], atol=1e-5)
    assert make_extractor("ssl", upstream=folder, layers=[0]).layers == (0,)
    # no normalisation: raw hidden states on the valid frames, padding frames still 0
    raw = make_extractor("ssl", upstream=folder, layer=2, norm="none")(waves, lengths)
    assert np.all(raw[1, 149:] == 0.0) and np.any(raw[1, :149] != 0.0)


def test_config_identifies_the_weights_and_layers_not_the_path(upstreams, tmp_path):
    folder, _ = upstreams["hubert"]
    ex = make_extractor("ssl", upstream=folder, layers=(1, 2))
    cfg = ex.config
    assert cfg["model_type"] == "hubert" and cfg["upstream"] == "hubert" and len(cfg["upstream_sha256"]) == 64
    assert cfg["layers"] == [1, 2] and cfg["num_hidden_layers"] == N_LAYERS and cfg["hidden_size"] == HIDDEN
    assert cfg["norm"] == "scalar" and cfg["feature_extractor"] == "preprocessor_config.json"
    assert cfg["attention_mask"] is False and cfg["do_normalize"] is True
    assert str(folder.parent) not in str(cfg)

    def key(**options):
        return feature_key("m" * 64, "ssl", make_extractor("ssl", **options).config)

    assert len({key(upstream=folder, layer=1), key(upstream=folder, layer=2), key(upstream=folder, layers=(1, 2)),
                key(upstream=folder, layers=(2, 1))}) == 4
    assert key(upstream=folder, layer=2) == key(upstream=folder) == key(upstream=folder, layers=(2,))
    moved = tmp_path / "elsewhere" / "hubert"
    shutil.copytree(folder, moved)
    assert key(upstream=moved) == key(upstream=folder)
    reseeded = tmp_path / "other" / "hubert"
    save_model(reseeded, "hubert", seed=1)
    assert key(upstream=reseeded) != key(upstream=folder)


def test_folder_without_preprocessor_config_uses_the_default_feature_extractor(upstreams, tmp_path):
    folder = tmp_path / "bare"
    save_model(folder, "wav2vec2", processor=False)
    ex = make_extractor("ssl", upstream=folder)
    assert ex.config["feature_extractor"].startswith("default Wav2Vec2FeatureExtractor")
    assert ex.attention_mask is False and ex.do_normalize is True


def test_missing_or_incomplete_upstream_says_what_to_put_there(upstreams, tmp_path):
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    shutil.copy(upstreams["wavlm"][0] / "config.json", no_weights)
    (tmp_path / "empty").mkdir()
    for upstream, what in ((None, "needs an upstream"), (tmp_path / "nowhere", "does not exist"),
                           (tmp_path / "empty", "no config.json"), (no_weights, "no model.safetensors")):
        with pytest.raises(MissingAssetError, match=what) as err:
            make_extractor("ssl", upstream=upstream)
        assert "save_pretrained" in str(err.value) and "microsoft/wavlm-base-plus" in str(err.value)


def test_bad_layers_name_the_valid_range(upstreams):
    folder, _ = upstreams["wav2vec2"]
    for options in ({"layer": 3}, {"layer": -1}, {"layers": (1, 5)}):
        with pytest.raises(DataError, match=r"out of range: valid layers are 0\.\.2"):
            make_extractor("ssl", upstream=folder, **options)
    with pytest.raises(DataError, match="either layer or layers"):
        make_extractor("ssl", upstream=folder, layer=1, layers=(1, 2))
    with pytest.raises(DataError, match="twice"):
        make_extractor("ssl", upstream=folder, layers=(1, 1))
    with pytest.raises(DataError, match="only used by the hubert"):
        make_extractor("ssl", upstream=folder, checkpoint="x.pth")


def test_layer_mix_starts_as_the_mean_and_learns_weights():
    mix = LayerMix(3, 4)
    x = torch.randn(2, 5, 12, requires_grad=True)
    w = mix.weights()
    torch.testing.assert_close(w, torch.full((3,), 1 / 3))
    torch.testing.assert_close(mix(x), x.unflatten(-1, (3, 4)).mean(dim=-2))
    (mix(x) * torch.randn(2, 5, 4)).sum().backward()
    assert mix.logits.grad is not None and mix.logits.grad.abs().sum() > 0 and x.grad.abs().sum() > 0
    with torch.no_grad():
        mix.logits.copy_(torch.tensor([0.0, 2.0, -1.0]))
    assert torch.isclose(mix.weights().sum(), torch.tensor(1.0)) and bool((mix.weights() > 0).all())
    torch.testing.assert_close(mix(x), torch.einsum("btld,l->btd", x.unflatten(-1, (3, 4)), mix.weights()))
    with pytest.raises(ValueError, match="last dim of 12"):
        mix(torch.zeros(1, 2, 8))


def test_store_says_the_entry_size_and_records_layers(upstreams, tmp_path):
    manifest = write_manifest(tmp_path / "corpus")
    lines: list[str] = []
    fs = extract_features(manifest, "ssl", tmp_path / "store", upstream=upstreams["wavlm"][0], layers=(1, 2),
                          progress=False, log=lines.append)
    assert fs.shape == (7, 374, 2 * HIDDEN)
    assert any(line.startswith(f"extracting 7 utterances x 374 frames x {2 * HIDDEN} dims = 0.0 GB float16 into ")
               and fs.key in line for line in lines), lines
    assert fs.meta["layers"] == [1, 2] and fs.meta["layer_dim"] == HIDDEN
    assert fs.meta["config"]["layers"] == [1, 2]
    fbank = extract_features(manifest, "fbank", tmp_path / "store", progress=False)
    assert "layers" not in fbank.meta


def test_store_refuses_when_the_disk_is_too_small(tmp_path, monkeypatch):
    from hcld.features import store as store_mod

    manifest = write_manifest(tmp_path / "corpus")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(store_mod.shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    lines: list[str] = []
    with pytest.raises(DataError, match="not enough disk space"):
        extract_features(manifest, "fbank", tmp_path / "store", progress=False, log=lines.append)
    assert lines and lines[0].startswith("extracting 7 utterances x 374 frames x 80 dims")
    assert not [p for p in (tmp_path / "store").iterdir() if p.is_dir()]  # nothing allocated


def test_features_command_with_an_upstream_and_layers(upstreams, tmp_path):
    from click.testing import CliRunner

    from grid.cli import main

    manifest = write_manifest(tmp_path / "corpus")
    folder = str(upstreams["wav2vec2"][0])
    base = ["features", "--manifest", str(manifest), "--store", str(tmp_path / "store"), "--no-progress"]
    result = CliRunner().invoke(main, [*base, "--extractor", "ssl", "--upstream", folder, "--layers", "1,2"])
    assert result.exit_code == 0, result.output
    assert f"shape: [7, 374, {2 * HIDDEN}] float16" in result.output and "extracting 7 utterances" in result.output
    for args, message in (([], "needs an upstream"), (["--upstream", folder, "--layer", "7"], "out of range"),
                          (["--upstream", folder, "--layer", "1", "--layers", "1,2"], "mutually exclusive")):
        bad = CliRunner().invoke(main, [*base, "--extractor", "ssl", *args])
        assert bad.exit_code == 2 and message in bad.output and "Traceback" not in bad.output, bad.output
    for args, message in ((["--layers", "1,2"], "--layers only applies"),
                          (["--upstream", folder], "--upstream only applies")):
        bad = CliRunner().invoke(main, [*base, "--extractor", "fbank", *args])
        assert bad.exit_code == 2 and message in bad.output, bad.output
