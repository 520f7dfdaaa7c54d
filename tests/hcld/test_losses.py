"""Each loss against a naive per-pair Python loop in float64: values and gradients, edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from hcld.config import TrialConfig
from hcld.losses.icld import icld_loss
from hcld.losses.lcl import lcl_loss
from hcld.losses.orth import orth_loss
from hcld.losses.sampling import ensure_positive_index
from hcld.losses.supcon import anchors_with_positive, supcon_loss
from hcld.losses.task import cross_entropy
from hcld.losses.variants import (
    TERM_NAMES,
    VARIANTS,
    WEIGHT_SETTINGS,
    canonical,
    loss_terms,
    loss_weights,
    unused_settings,
    variant_weights,
    weighted_total,
)

EPS = 1e-8


def icld(xe, xs, e, s, *, margin=0.0, negative="text", positive="xe"):
    return icld_loss(xe, xs, e, s, margin=margin, negative=negative, positive=positive, impl="torch")


def supcon(x, labels, *, temperature=0.07, ensure_positives=True, reduction="mean"):
    return supcon_loss(x, labels, temperature=temperature, ensure_positives=ensure_positives, impl="torch",
                       reduction=reduction)


def lcl(anchors, x, labels, *, temperature, reduction="mean"):
    return lcl_loss(anchors, x, labels, temperature=temperature, impl="torch", reduction=reduction)


def _unit(v):
    return v / torch.clamp(torch.linalg.vector_norm(v), min=EPS)


def _cos(a, b):
    return torch.dot(_unit(a), _unit(b))


def naive_icld(xe, xs, emo, spk, margin, negative):
    pos, neg = [], []
    n = len(emo)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if spk[i] == spk[j] and emo[i] != emo[j]:
                pos.append((1 - _cos(xe[i], xe[j])) ** 2)
            if spk[i] != spk[j] and emo[i] == emo[j]:
                c = _cos(xs[i], xs[j])
                h = c - margin if negative == "text" else margin - c
                neg.append(torch.clamp(h, min=0) ** 2)
    zero = (xe.sum() + xs.sum()) * 0
    return (sum(pos) / len(pos) if pos else zero) + (sum(neg) / len(neg) if neg else zero)


def naive_supcon(x, labels, tau):
    n = len(labels)
    per_anchor = []
    for i in range(n):
        others = [a for a in range(n) if a != i]
        positives = [p for p in others if labels[p] == labels[i]]
        if not positives:
            continue
        denom = sum(torch.exp(_cos(x[i], x[a]) / tau) for a in others)
        log_ratios = [torch.log(torch.exp(_cos(x[i], x[p]) / tau) / denom) for p in positives]
        per_anchor.append(-sum(log_ratios) / len(positives))
    return sum(per_anchor) / len(per_anchor) if per_anchor else x.sum() * 0


def naive_lcl(anchors, x, labels, tau):
    n = len(labels)
    terms = []
    for i in range(n):
        e = anchors[labels[i]]
        denom = sum(torch.exp(_cos(e, x[a]) / tau) for a in range(n))
        terms.append(-torch.log(torch.exp(_cos(e, x[i]) / tau) / denom))
    return sum(terms) / n


def naive_orth(xe, xs):
    n, de, ds = xe.shape[0], xe.shape[1], xs.shape[1]
    total = 0
    for p in range(de):
        a = xe[:, p]
        a = (a - a.mean()) / (torch.sqrt(((a - a.mean()) ** 2).mean()) + 1e-6)
        for q in range(ds):
            b = xs[:, q]
            b = (b - b.mean()) / (torch.sqrt(((b - b.mean()) ** 2).mean()) + 1e-6)
            total = total + (sum(a[k] * b[k] for k in range(n)) / n) ** 2
    return total / (de * ds)


def _leaves(*tensors):
    return [t.detach().clone().double().requires_grad_(True) for t in tensors]


def _check(ours_fn, naive_fn, inputs, atol=1e-5):
    a = _leaves(*inputs)
    b = _leaves(*inputs)
    ours, ref = ours_fn(*a), naive_fn(*b)
    assert math.isfinite(float(ours.detach()))
    assert float(ours.detach()) == pytest.approx(float(ref.detach()), abs=atol, rel=1e-4)
    ga = torch.autograd.grad(ours, a, allow_unused=True)
    gb = torch.autograd.grad(ref, b, allow_unused=True)
    for x, y in zip(ga, gb):
        x = torch.zeros_like(a[0]) if x is None else x
        y = torch.zeros_like(x) if y is None else y
        torch.testing.assert_close(x.double(), y.double(), atol=atol, rtol=1e-4)


# labels per case: (emotion, speaker); covers mixed, one class only, no positive pairs
LABEL_CASES = {
    "mixed": ([0, 1, 2, 3, 0, 1, 0, 2], [0, 0, 1, 1, 2, 2, 0, 1]),
    "one_class": ([2] * 6, [0, 0, 1, 1, 2, 2]),
    "one_speaker": ([0, 1, 2, 3, 0, 1], [4] * 6),
    "all_distinct": ([0, 1, 2, 3], [0, 1, 2, 3]),
}


def _batch(n, d=5, seed=0, kind="random"):
    g = torch.Generator().manual_seed(seed)
    xe = torch.randn(n, d, generator=g, dtype=torch.float64)
    xs = torch.randn(n, d, generator=g, dtype=torch.float64)
    if kind == "duplicate":
        xe[1], xs[1] = xe[0], xs[0]
        xe[3], xs[3] = xe[2], xs[2]
    if kind == "zero":
        xe[0] = 0
        xs[1] = 0
    return xe, xs


@pytest.mark.parametrize("case", sorted(LABEL_CASES))
@pytest.mark.parametrize("kind", ["random", "duplicate", "zero"])
@pytest.mark.parametrize("negative,margin", [("text", 0.0), ("text", 0.3), ("printed", 0.5)])
def test_icld_matches_naive_loop(case, kind, negative, margin):
    emo, spk = LABEL_CASES[case]
    xe, xs = _batch(len(emo), kind=kind)
    e, s = torch.tensor(emo), torch.tensor(spk)
    _check(
        lambda a, b: icld(a, b, e, s, margin=margin, negative=negative),
        lambda a, b: naive_icld(a, b, emo, spk, margin, negative),
        (xe, xs),
    )


def test_icld_without_pairs_is_zero_not_nan():
    xe, xs = _batch(4)
    loss = icld(xe, xs, torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 3]))
    assert float(loss) == 0.0


def test_icld_text_hinge_pushes_speaker_features_apart():
    # same emotion, different speakers, identical X_s: the text form penalises the similarity
    x = torch.ones(2, 3)
    emo, spk = torch.tensor([1, 1]), torch.tensor([0, 1])
    assert float(icld(x, x, emo, spk, negative="text")) == pytest.approx(1.0)
    assert float(icld(x, x, emo, spk, negative="printed")) == pytest.approx(0.0)


@pytest.mark.parametrize("case", sorted(LABEL_CASES))
@pytest.mark.parametrize("kind", ["random", "duplicate", "zero"])
def test_supcon_matches_naive_loop(case, kind):
    emo, _ = LABEL_CASES[case]
    x, _ = _batch(len(emo), kind=kind)
    lab = torch.tensor(emo)
    _check(
        lambda a: supcon(a, lab, temperature=0.1, ensure_positives=False),
        lambda a: naive_supcon(a, emo, 0.1),
        (x,),
    )


def test_supcon_with_replication_is_supcon_of_the_replicated_batch():
    emo = [0, 1, 1, 2, 2, 2, 3]
    x, _ = _batch(len(emo), seed=3)
    idx = ensure_positive_index(torch.tensor(emo)).tolist()
    _check(
        lambda a: supcon(a, torch.tensor(emo), temperature=0.2, ensure_positives=True),
        lambda a: naive_supcon(a[idx], [emo[i] for i in idx], 0.2),
        (x,),
    )


def test_supcon_with_no_positive_is_zero_not_nan():
    x, _ = _batch(4)
    loss = supcon(x, torch.tensor([0, 1, 2, 3]), ensure_positives=False)
    assert float(loss) == 0.0


@pytest.mark.parametrize("case", sorted(LABEL_CASES))
@pytest.mark.parametrize("kind", ["random", "duplicate", "zero"])
def test_lcl_matches_naive_loop(case, kind):
    emo, _ = LABEL_CASES[case]
    x, _ = _batch(len(emo), kind=kind)
    anchors = torch.randn(4, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    if kind == "zero":
        anchors[3] = 0
    _check(
        lambda a, b: lcl(a, b, torch.tensor(emo), temperature=0.1),
        lambda a, b: naive_lcl(a, b, emo, 0.1),
        (anchors, x),
    )


@pytest.mark.parametrize("kind", ["random", "duplicate", "zero"])
def test_orth_matches_naive_loop(kind):
    xe, xs = _batch(6, d=4, kind=kind)
    _check(orth_loss, naive_orth, (xe, xs))


def test_orth_is_zero_for_uncorrelated_and_one_for_identical_features():
    xe = torch.tensor([[1.0], [-1.0], [1.0], [-1.0]])
    xs = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]])
    assert float(orth_loss(xe, xs)) == pytest.approx(0.0, abs=1e-9)
    assert float(orth_loss(xe, xe)) == pytest.approx(1.0, abs=1e-5)
    assert float(orth_loss(xe[:1], xs[:1])) == 0.0


def test_task_terms_are_batch_mean_cross_entropies():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    expected = -(math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(1 / (1 + math.e))) / 2
    assert float(cross_entropy(logits, y, reduction="mean")) == pytest.approx(expected)
    assert float(cross_entropy(logits, y, reduction="printed")) == pytest.approx(2 * expected)


# -- replicate and downsample -------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(25))
def test_every_anchor_has_a_positive_after_replication(seed):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 40, (1,), generator=g))
    labels = torch.randint(0, int(torch.randint(1, 12, (1,), generator=g)), (n,), generator=g)
    idx = ensure_positive_index(labels)
    out = labels[idx].tolist()
    k = len(set(labels.tolist()))
    assert len(out) == max(n, 2 * k)
    assert set(out) == set(labels.tolist())  # no class disappears
    assert all(out.count(v) >= 2 for v in out)  # every anchor has a positive
    assert idx.max() < n and idx.min() >= 0


def test_replication_keeps_a_batch_with_positives_unchanged():
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    assert ensure_positive_index(labels).tolist() == list(range(6))


def test_replication_repeats_singletons_and_drops_from_the_largest_class():
    labels = torch.tensor([0, 0, 0, 0, 1, 2])
    idx = ensure_positive_index(labels).tolist()
    # singletons 1 and 2 are repeated; two rows of class 0 (its last ones) go to keep 6 rows
    assert sorted(idx) == [0, 1, 4, 4, 5, 5]


# -- variants -----------------------------------------------------------------------------------


def test_variants_are_the_paper_rows():
    assert set(VARIANTS) == {"emo_only", "multitask", "orth", "wo_supcon", "wo_lcl", "hcld", "icld_only"}
    assert variant_weights("multitask").as_tuple() == (1, 1, 0, 0, 0, 0)
    assert variant_weights("hcld").as_tuple() == (1, 1, 1, 1, 1, 0)
    assert variant_weights("emo_only").as_tuple() == (1, 0, 0, 0, 0, 0)
    assert variant_weights("wo_supcon").supcon == 0 and variant_weights("wo_supcon").lcl == 1
    assert variant_weights("wo_lcl").lcl == 0 and variant_weights("wo_lcl").supcon == 1
    assert variant_weights("orth").orth == 1 and variant_weights("orth").icld == 0


def _model_out(n=8, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "xe": torch.randn(n, d, generator=g, requires_grad=True),
        "xs": torch.randn(n, d, generator=g, requires_grad=True),
        "emo_logits": torch.randn(n, 4, generator=g),
        "spk_logits": torch.randn(n, 3, generator=g),
        "anchors": torch.randn(4, d, generator=g),
    }


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_loss_terms_compute_exactly_the_variant_terms(variant):
    out = _model_out()
    emo, spk = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]), torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    config = TrialConfig(variant=variant)
    w = variant_weights(variant)
    terms = loss_terms(out, emo, spk, config, w)
    expected = {name for name, weight in zip(TERM_NAMES, w.as_tuple()) if weight}
    assert set(terms) == expected
    values = {name: float(value.detach()) for name, value in terms.items()}
    total = weighted_total(terms, w)
    assert float(total.detach()) == pytest.approx(sum(values[k] for k in expected), rel=1e-6)


def test_loss_terms_use_the_configured_supcon_inputs():
    out = _model_out()
    emo, spk = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]), torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    config = TrialConfig(variant="wo_lcl", supcon_embedding="xs", supcon_labels="speaker", ensure_positives=False)
    terms = loss_terms(out, emo, spk, config, variant_weights("wo_lcl"))
    direct = supcon(out["xs"], spk, temperature=config.temperature, ensure_positives=False)
    assert float(terms["loss_supcon"].detach()) == pytest.approx(float(direct.detach()))


def test_icld_positive_on_xs_uses_the_speaker_embedding_for_positive_pairs():
    emo, spk = LABEL_CASES["mixed"]
    xe, xs = _batch(len(emo), seed=5)
    e, s = torch.tensor(emo), torch.tensor(spk)
    _check(
        lambda a, b: icld(a, b, e, s, positive="xs"),
        lambda a, b: naive_icld(b, b, emo, spk, 0.0, "text"),
        (xe, xs),
    )


# -- reduction: the printed sums ------------------------------------------------------------------


def test_printed_reduction_sums_what_the_paper_sums_and_keeps_icld_a_mean():
    out = _model_out()
    emo, spk = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]), torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    w = variant_weights("hcld")
    mean = loss_terms(out, emo, spk, TrialConfig(reduction="mean"), w)
    printed = loss_terms(out, emo, spk, TrialConfig(reduction="printed"), w)
    n = len(emo)
    # every label has two rows here, so SupCon's anchors are all 8 rows
    assert int(anchors_with_positive(emo)) == n
    for name, factor in (("loss_emo_ce", n), ("loss_spk_ce", n), ("loss_supcon", n), ("loss_lcl", n),
                         ("loss_icld", 1)):
        assert float(printed[name].detach()) == pytest.approx(factor * float(mean[name].detach()), rel=1e-6), name


def test_anchors_with_positive_counts_rows_that_share_their_label():
    assert int(anchors_with_positive(torch.tensor([0, 0, 1, 2, 2, 2]))) == 5
    assert int(anchors_with_positive(torch.tensor([0, 1, 2]))) == 0


# -- settings a variant does not read -------------------------------------------------------------


def test_unused_settings_follow_the_variant_terms():
    emo_only = unused_settings(TrialConfig(variant="emo_only"))
    assert {"temperature", "trunk", "icld_margin", "anchor_projection"} <= emo_only
    multitask = unused_settings(TrialConfig(variant="multitask"))
    assert "temperature" in multitask and "trunk" not in multitask and "reduction" not in multitask
    assert "icld_margin" not in unused_settings(TrialConfig(variant="icld_only"))
    hcld = unused_settings(TrialConfig(variant="hcld"))
    assert not {"temperature", "trunk", "icld_margin", "anchor_projection"} & hcld
    assert "speaker_backbone" in hcld  # shared trunk: one backbone
    assert "speaker_backbone" not in unused_settings(TrialConfig(variant="hcld", trunk="separate"))


def test_canonical_resets_only_unused_settings():
    c = TrialConfig(variant="emo_only", temperature=0.5, trunk="separate", lr=1e-3)
    assert canonical(c) == TrialConfig(variant="emo_only", lr=1e-3)
    h = TrialConfig(variant="hcld", temperature=0.5, trunk="separate")
    assert canonical(h) == h


# -- per-term weights (TrialConfig.weight_*) --------------------------------------------------------


def test_trial_weights_scale_each_present_term_and_leave_absent_ones_off():
    out = _model_out()
    emo, spk = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]), torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    scale = {"weight_spk_ce": 0.5, "weight_icld": 2.0, "weight_supcon": 3.0, "weight_lcl": 0.25, "weight_orth": 7.0}
    for variant in ("emo_only", "orth", "hcld"):
        config = TrialConfig(variant=variant, **scale)
        terms = loss_terms(out, emo, spk, config, loss_weights(config))
        assert set(terms) == set(loss_terms(out, emo, spk, config, variant_weights(variant)))  # same terms
        curve_name = {"task_spk": "loss_spk_ce", "icld": "loss_icld", "supcon": "loss_supcon", "lcl": "loss_lcl",
                      "orth": "loss_orth"}
        by_hand = float(terms["loss_emo_ce"].detach())  # the emotion CE keeps weight 1
        by_hand += sum(scale[setting] * float(terms[curve_name[term]].detach())
                       for term, setting in WEIGHT_SETTINGS.items() if curve_name[term] in terms)
        total = float(weighted_total(terms, loss_weights(config)).detach())
        assert total == pytest.approx(by_hand, rel=1e-6), variant
    assert loss_weights(TrialConfig(variant="hcld")) == variant_weights("hcld")  # defaults: the paper's sum


def test_a_weight_is_an_unused_setting_where_the_variant_lacks_its_term():
    assert {"weight_spk_ce", "weight_icld", "weight_supcon", "weight_lcl", "weight_orth"} <= unused_settings(
        TrialConfig(variant="emo_only"))
    orth = unused_settings(TrialConfig(variant="orth"))
    assert "weight_orth" not in orth and "weight_spk_ce" not in orth and "weight_icld" in orth
    hcld = unused_settings(TrialConfig(variant="hcld"))
    assert not {"weight_spk_ce", "weight_icld", "weight_supcon", "weight_lcl"} & hcld and "weight_orth" in hcld
    assert canonical(TrialConfig(variant="multitask", weight_icld=3.0)) == TrialConfig(variant="multitask")


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_a_weight_must_be_positive(value):
    from hcld.errors import ConfigError

    with pytest.raises(ConfigError, match="weight_supcon"):
        TrialConfig(weight_supcon=value)
