"""Named grids expand to the paper's trials; --set overrides are typed and checked."""

import pytest

from grid import plan as specs
from grid import sweeps
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
    with pytest.raises(HcldError, match="full, quick, demo, smoke, readings"):
        specs.get_grid("nope")


def test_parse_settings_coerces_to_field_types():
    out = sweeps.parse_settings(["lr=1e-3", "epochs=7", "ensure_positives=false",
                                "speaker_backbone=lstm", "threads=none", "threads=4",
                                "icld_negative=printed"])
    assert out == {"lr": 1e-3, "epochs": 7, "ensure_positives": False, "speaker_backbone": "lstm",
                   "threads": 4, "icld_negative": "printed"}
    assert isinstance(out["epochs"], int) and isinstance(out["lr"], float)
    assert sweeps.parse_settings(["roberta_path=None"]) == {"roberta_path": None}
    TrialConfig(trunk="separate").replace(**out)  # the result is a valid config


@pytest.mark.parametrize("item, message", [
    ("nosuchfield=1", "not a trial setting; known: backbone"),
    ("variant=nosuch", "expected emo_only | multitask"),
    ("temperature=0", "must be > 0"),
    ("batch_size=0", "must be >= 2"),
    ("epochs=ten", "expected int"),
    ("ensure_positives=maybe", "expected bool"),
    ("epochs", "expected key=value"),
])
def test_parse_settings_rejects_bad_items_clearly(item, message):
    with pytest.raises(HcldError, match=message):
        sweeps.parse_settings([item])


# -- sweeps ---------------------------------------------------------------------------------------


def test_sweep_is_the_product_with_the_grid_cells_without_repeating_unused_settings():
    spec = specs.GridSpec("t", "test", backbones=("cnn",), variants=("emo_only", "multitask", "hcld"))
    points = specs.resolve(spec, n_folds=2, sweeps={"temperature": (0.1, 0.2, 0.5), "trunk": ("shared", "separate")})
    by_variant = {v: [p for p in points if p.config.variant == v] for v in ("emo_only", "multitask", "hcld")}
    # emo_only reads neither key, multitask reads the trunk only, hcld both
    assert len(by_variant["emo_only"]) == 2
    assert len(by_variant["multitask"]) == 2 * 2
    assert len(by_variant["hcld"]) == 3 * 2 * 2
    assert len({(p.config, p.fold) for p in points}) == len(points)
    counts = specs.points_per_setting(points, {"temperature": (0.1, 0.2, 0.5), "trunk": ("shared", "separate")})
    assert [n for _, n in counts] == [2 + 2 + 2] * 6  # each setting: 1 emo_only, 1 multitask, 1 hcld x 2 folds


def test_adding_a_sweep_value_keeps_the_ids_of_the_trials_already_planned():
    from grid.trials import trial_id

    spec = specs.get_grid("readings")
    ids = lambda pts: {trial_id(p.config, p.fold, "data", "v") for p in pts}  # noqa: E731
    before = ids(specs.resolve(spec, n_folds=5))
    after = ids(specs.resolve(spec, n_folds=5, sweeps={"temperature": (0.07, 0.2, 0.5, 1.0)}))
    assert before < after
    assert len(after - before) == 3 * 2 * 5  # only hcld reads the temperature: 3 backbones x 2 trunks x 5 folds


def test_readings_grid_sweeps_trunk_and_temperature_over_the_controls():
    spec = specs.get_grid("readings")
    assert spec.sweeps == {"trunk": ("shared", "separate"), "temperature": (0.07, 0.2, 0.5)}
    assert set(spec.variants) == {"emo_only", "multitask", "orth", "hcld"}
    points = specs.resolve(spec, n_folds=5)
    # emo_only 3x5, multitask and orth 3x2x5 each, hcld 3x2x3x5
    assert len(points) == 15 + 30 + 30 + 90


def test_parse_sweeps_types_values_and_rejects_bad_ones():
    assert sweeps.parse_sweeps(["temperature=0.1, 0.2", "trunk=shared,separate", "ensure_positives=on,off"]) == {
        "temperature": (0.1, 0.2), "trunk": ("shared", "separate"), "ensure_positives": (True, False)}
    for item, message in (("temperature=0.1,0", "must be > 0"), ("trunk=both", "expected shared | separate"),
                          ("nope=1", "not a trial setting"), ("variant=hcld", "use --variants"),
                          ("lr=", "at least one value"), ("lr", "expected key=value")):
        with pytest.raises(HcldError, match=message):
            sweeps.parse_sweeps([item])


def test_a_swept_combination_that_breaks_a_cross_field_rule_is_one_clear_error():
    with pytest.raises(HcldError, match="speaker_backbone.*needs trunk=separate"):
        specs.resolve(specs.get_grid("smoke"), n_folds=5, sweeps={"speaker_backbone": ("lstm",)})
