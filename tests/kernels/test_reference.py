"""The PyTorch reference losses against naive per-pair loops in float64 (values and gradients).

The loops transcribe the formulas in hcld/kernels/reference.py docstrings one pair at a time, so a
vectorisation slip in the reference (a mask, a transpose, a mean over the wrong set) shows up here.
"""

import pytest
import torch

from hcld.kernels import reference


def _cos(a, b):
    na = torch.linalg.vector_norm(a).clamp(min=reference.NORM_EPS)
    nb = torch.linalg.vector_norm(b).clamp(min=reference.NORM_EPS)
    return (a / na * (b / nb)).sum()


def naive_icld(xe, xs, emotion, speaker, margin, negative):
    n = xe.shape[0]
    pos_terms, neg_terms = [], []
    for i in range(n):
        for j in range(n):
            same_spk, same_emo = speaker[i] == speaker[j], emotion[i] == emotion[j]
            if same_spk and not same_emo:
                pos_terms.append((1 - _cos(xe[i], xe[j])) ** 2)
            if same_emo and not same_spk:
                c = _cos(xs[i], xs[j])
                hinge = c - margin if negative == "text" else margin - c
                neg_terms.append(torch.clamp(hinge, min=0) ** 2)
    mean = lambda terms: sum(terms) / len(terms) if terms else xe.sum() * 0
    return mean(pos_terms) + mean(neg_terms)


def naive_supcon(x, labels, tau):
    n = x.shape[0]
    per_anchor = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        positives = [p for p in others if labels[p] == labels[i]]
        if not positives:
            continue
        denom = sum(torch.exp(_cos(x[i], x[a]) / tau) for a in others)
        per_anchor.append(-sum(torch.log(torch.exp(_cos(x[i], x[p]) / tau) / denom) for p in positives)
                          / len(positives))
    return sum(per_anchor) / len(per_anchor) if per_anchor else x.sum() * 0


def naive_label_contrastive(anchors, x, labels, tau):
    n = x.shape[0]
    total = 0
    for i in range(n):
        c = int(labels[i])
        denom = sum(torch.exp(_cos(anchors[c], x[a]) / tau) for a in range(n))
        total = total - torch.log(torch.exp(_cos(anchors[c], x[i]) / tau) / denom)
    return total / n


def _leaf(t):
    return t.double().clone().requires_grad_(True)


def _compare(ref_fn, naive_fn, tensors):
    """Values and gradients of the reference (fp32 inputs) against the float64 naive loop."""
    ref_in = [t.float().clone().requires_grad_(True) for t in tensors]
    naive_in = [_leaf(t) for t in tensors]
    ref = ref_fn(*ref_in)
    naive = naive_fn(*naive_in)
    assert torch.isfinite(ref)
    assert float(ref.detach()) == pytest.approx(float(naive.detach()), rel=1e-5, abs=1e-6)
    ref_grads = torch.autograd.grad(ref, ref_in, allow_unused=True)
    naive_grads = torch.autograd.grad(naive, naive_in, allow_unused=True)
    for got, want, t in zip(ref_grads, naive_grads, tensors):
        got = torch.zeros_like(t.float()) if got is None else got
        want = torch.zeros_like(t.double()) if want is None else want
        scale = max(float(want.abs().max()), 1e-6)
        assert float((got.double() - want).abs().max()) <= 1e-4 * scale


def _labels(n, k, seed):
    return torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(seed))


def _embed(n, d, seed):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("negative,margin", [("text", 0.0), ("text", 0.3), ("printed", 0.5), ("printed", -0.2)])
def test_icld_matches_naive_loop(negative, margin):
    n = 11
    e, s = _labels(n, 3, 1), _labels(n, 3, 2)
    _compare(lambda a, b: reference.icld(a, b, e, s, margin=margin, negative=negative),
             lambda a, b: naive_icld(a, b, e, s, margin, negative), [_embed(n, 6, 3), _embed(n, 5, 4)])


@pytest.mark.parametrize("case", ["one_class", "own_class", "one_sample", "zero_and_duplicate"])
def test_icld_adversarial_matches_naive_loop(case):
    n = 1 if case == "one_sample" else 8
    e, s = _labels(n, 2, 5), _labels(n, 2, 6)
    xe, xs = _embed(n, 4, 7), _embed(n, 4, 8)
    if case == "one_class":
        e = torch.zeros(n, dtype=torch.long)
    if case == "own_class":
        e = s = torch.arange(n)
    if case == "zero_and_duplicate":
        xe[0] = 0.0
        xs[1] = xs[2]
        xe[3] = 1e-10
    _compare(lambda a, b: reference.icld(a, b, e, s, margin=0.1, negative="text"),
             lambda a, b: naive_icld(a, b, e, s, 0.1, "text"), [xe, xs])


@pytest.mark.parametrize("tau", [0.07, 0.5, 0.01])
def test_supcon_matches_naive_loop(tau):
    n = 10
    _compare(lambda a: reference.supcon(a, _labels(n, 3, 9), temperature=tau),
             lambda a: naive_supcon(a, _labels(n, 3, 9), tau), [_embed(n, 5, 10)])


@pytest.mark.parametrize("case", ["one_class", "own_class", "one_sample", "some_without_positive", "duplicates"])
def test_supcon_adversarial_matches_naive_loop(case):
    n = 1 if case == "one_sample" else 7
    labels = {"one_class": torch.zeros(n, dtype=torch.long), "own_class": torch.arange(n),
              "one_sample": torch.zeros(1, dtype=torch.long),
              "some_without_positive": torch.tensor([0, 0, 1, 2, 2, 2, 3]),
              "duplicates": _labels(n, 2, 11)}[case]
    x = _embed(n, 4, 12)
    if case == "duplicates":
        x[1] = x[0]
        x[2] = x[0]
    _compare(lambda a: reference.supcon(a, labels, temperature=0.1),
             lambda a: naive_supcon(a, labels, 0.1), [x])


@pytest.mark.parametrize("tau", [0.07, 0.01])
def test_label_contrastive_matches_naive_loop(tau):
    n, c = 9, 4
    labels = torch.tensor([0, 1, 1, 3, 3, 3, 0, 1, 3])  # class 2 absent
    _compare(lambda a, x: reference.label_contrastive(a, x, labels, temperature=tau),
             lambda a, x: naive_label_contrastive(a, x, labels, tau), [_embed(c, 5, 13), _embed(n, 5, 14)])


def test_empty_terms_are_zero_not_nan():
    x = torch.randn(4, 3, requires_grad=True)
    same = torch.zeros(4, dtype=torch.long)
    assert float(reference.icld(x, x, same, same).detach()) == 0.0
    loss = reference.supcon(x, torch.arange(4))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(x.grad, torch.zeros_like(x))


def test_icld_rejects_unknown_negative_form():
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="negative form"):
        reference.icld(x, x, torch.arange(3), torch.arange(3), negative="other")


def test_reference_keeps_fp64_inputs_in_fp64():
    """The GPU tests compare with the reference in fp64: fp64 inputs must not drop to fp32."""
    g = torch.Generator().manual_seed(5)
    x, a = torch.randn(12, 8, generator=g, dtype=torch.float64), torch.randn(4, 8, generator=g, dtype=torch.float64)
    y, s = torch.randint(0, 4, (12,), generator=g), torch.randint(0, 3, (12,), generator=g)
    for loss in (reference.supcon(x, y), reference.label_contrastive(a, x, y), reference.icld(x, x, y, s, margin=0.1)):
        assert loss.dtype == torch.float64
    assert float(reference.supcon(x, y)) == pytest.approx(float(reference.supcon(x.float(), y)), rel=1e-5)
