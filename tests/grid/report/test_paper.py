"""The transcribed paper tables: order, row names, the "-" entries and the unlabelled stray row."""

from grid.report import paper


def test_table2_has_the_printed_rows_in_order():
    printed = [(r.type, r.model) for r in paper.TABLE_II]
    assert printed == [
        ("EMO-only", "CNN"), ("EMO-only", "LSTM"), ("EMO-only", "Transformer"),
        ("orth", "CNN"), ("orth", "LSTM"), ("orth", "Transformer"),
        ("wo.SupCon", "CNN"), ("wo.SupCon", "LSTM"), ("wo.SupCon", "Transformer"),
        ("", "CNN"),
        ("wo.LCL", "CNN"), ("wo.LCL", "LSTM"), ("wo.LCL", "Transformer"),
        ("HCLD", "CNN"), ("HCLD", "LSTM"), ("HCLD", "Transformer"),
    ]


def test_table2_spot_values_and_dashes():
    hcld_cnn = paper.ablation_row("hcld", "cnn")
    assert (hcld_cnn.emo_wa, hcld_cnn.emo_ua, hcld_cnn.spk_wa, hcld_cnn.spk_ua) == (75.52, 76.08, 75.70, 75.90)
    wo_lcl_lstm = paper.ablation_row("wo_lcl", "lstm")
    assert (wo_lcl_lstm.emo_wa, wo_lcl_lstm.spk_wa) == (75.43, 77.6)
    for backbone in paper.PAPER_BACKBONES:
        emo = paper.ablation_row("emo_only", backbone)
        assert emo.spk_wa is None and emo.spk_ua is None  # the paper prints "-"
        assert emo.emo_wa is not None


def test_stray_row_is_kept_but_never_matched():
    stray = [r for r in paper.TABLE_II if not r.comparable]
    assert len(stray) == 1
    assert (stray[0].emo_wa, stray[0].emo_ua, stray[0].spk_wa, stray[0].spk_ua) == (75.03, 74.27, 74.98, 75.01)
    assert stray[0].variant is None and "excluded" in stray[0].note
    # The comparable wo.LCL CNN row is the one labelled in the paper, not the stray one above it.
    assert paper.ablation_row("wo_lcl", "cnn").emo_wa == 75.88
    assert paper.ablation_row("icld_only", "cnn") is None


def test_every_variant_backbone_pair_has_exactly_one_comparable_row():
    for v in paper.PAPER_VARIANTS:
        for b in paper.PAPER_BACKBONES:
            rows = [r for r in paper.TABLE_II if r.comparable and (r.variant, r.backbone) == (v, b)]
            assert len(rows) == 1, (v, b)


def test_table1_baselines_and_hcld_rows():
    by_name = {r.model: r for r in paper.TABLE_I}
    assert [r.model for r in paper.TABLE_I] == [
        "CNN-LSTM", "LGFA", "ATFNN", "TFF", "TAP", "TAPT", "HCLD-CNN", "HCLD-RNN", "HCLD-transformers"]
    assert (by_name["LGFA"].ref, by_name["LGFA"].wa, by_name["LGFA"].ua) == ("[26]", 73.29, 62.63)
    assert by_name["TAP"].wa is None and by_name["TAPT"].wa is None and by_name["TAPT"].ua == 74.3
    assert by_name["HCLD-RNN"].backbone == "lstm"  # Table I calls the LSTM model "RNN"
    # The paper's own HCLD rows in Table I repeat its Table II HCLD emotion numbers.
    own = {r.backbone: r for r in paper.TABLE_I if r.backbone is not None}
    assert sorted(own) == sorted(paper.PAPER_BACKBONES)
    for b in paper.PAPER_BACKBONES:
        t1, t2 = own[b], paper.ablation_row("hcld", b)
        assert (t1.wa, t1.ua) == (t2.emo_wa, t2.emo_ua)
