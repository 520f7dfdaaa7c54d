"""Named grids expand to the paper's trials; --set overrides are typed and checked."""

import pytest

from grid import specs
from hcld.config import TrialConfig
from hcld.errors import HcldError


def test_full_grid_is_the_papers_75_trials_with_paper_settings():
    points = specs.resolve(specs.get_grid("full"), n_folds=5)
    assert len(points) == 75
    cells = {(p.config.backbone, p.config.variant, p.fold) for p in points}
    assert len(cells) == 75
    assert {p.config.backbone for p in points} == {"cnn", "lstm", "transformer"}
    assert {p.config.variant for p in points} == {"emo_only", "orth", "wo_supcon", "wo_lcl", "hcld"}
    assert {p.fold for p in points} == set(range(5))
    c = points[0].config
    assert (c.epochs, c.batch_size, c.lr, c.warmup_epochs) == (100, 32, 5e-4, 5)


def test_quick_grid_has_the_same_trials_with_fewer_epochs():
    full = specs.resolve(specs.get_grid("full"), n_folds=5)
    quick = specs.resolve(specs.get_grid("quick"), n_folds=5)
    assert [p.label for p in quick] == [p.label for p in full]
    assert all(p.config.epochs < 10 for p in quick)
    assert all(p.config.warmup_epochs < p.config.epochs for p in quick)


def test_smoke_grid_is_tiny():
    points = specs.resolve(specs.get_grid("smoke"), n_folds=5)
    assert {p.fold for p in points} == {0}
    assert all(p.config.model_size == "tiny" and p.config.epochs <= 2 for p in points)
    assert specs.get_grid("smoke").synth_utterances < specs.get_grid("full").synth_utterances


def test_overrides_subset_and_settings():
    points = specs.resolve(specs.get_grid("full"), n_folds=10, backbones=["lstm"],
                           variants=["hcld", "orth"], settings={"epochs": 3, "lr": 1e-3})
    assert len(points) == 1 * 2 * 10
    assert all(p.config.backbone == "lstm" and p.config.epochs == 3 and p.config.lr == 1e-3
               for p in points)


def test_demo_grid_has_the_full_trials_on_tiny_models():
    full = specs.resolve(specs.get_grid("full"), n_folds=5)
    demo = specs.resolve(specs.get_grid("demo"), n_folds=5)
    assert [p.label for p in demo] == [p.label for p in full]
    assert {(p.config.model_size, p.config.epochs) for p in demo} == {("tiny", 15)}


def test_grid_fold_outside_the_scheme_is_an_error():
    with pytest.raises(HcldError, match="fold"):
        specs.resolve(specs.get_grid("smoke"), n_folds=0)


def test_unknown_grid_names_the_known_ones():
    with pytest.raises(HcldError, match="full, quick, demo, smoke"):
        specs.get_grid("nope")


def test_parse_settings_coerces_to_field_types():
    out = specs.parse_settings(["lr=1e-3", "epochs=7", "ensure_positives=false",
                                "speaker_backbone=lstm", "threads=none", "threads=4",
                                "icld_negative=printed"])
    assert out == {"lr": 1e-3, "epochs": 7, "ensure_positives": False, "speaker_backbone": "lstm",
                   "threads": 4, "icld_negative": "printed"}
    assert isinstance(out["epochs"], int) and isinstance(out["lr"], float)
    assert specs.parse_settings(["roberta_path=None"]) == {"roberta_path": None}
    TrialConfig().replace(**out)  # the result is a valid config


@pytest.mark.parametrize("item, message", [
    ("nosuchfield=1", "not a trial setting; known: backbone"),
    ("epochs=ten", "expected int"),
    ("ensure_positives=maybe", "expected bool"),
    ("epochs", "expected key=value"),
])
def test_parse_settings_rejects_bad_items_clearly(item, message):
    with pytest.raises(HcldError, match=message):
        specs.parse_settings([item])
