"""What a missed accuracy budget fails, and what it tells the user to do next (no TensorFlow)."""

import dataclasses

import pytest

from edgecv.converters.verify import Budget
from edgecv.results import Conversion, ConversionRow


def _row(fmt, agreement, drop=0.0, **others):
    return ConversionRow(format=fmt, file=f"{fmt}.file", accuracy_drop_pp=drop,
                         agreement=agreement, **others)


def test_an_int8_file_over_budget_is_covered_by_a_qat_file_that_fits(tmp_path):
    """Even when --recover's mixed file missed too: it was a fallback for the int8 row, which
    the QAT file now covers. A QAT file that misses (or was not verified) covers nothing."""
    from edgecv.converters.convert import _check_budget, _credit_qat
    from edgecv.errors import AccuracyDropError

    budget = Budget(0.5, 99.0)
    rows = [_row("fp32", 1.0), _row("int8", 0.97), _row("int8_mixed", 0.985),
            _row("int8_qat", 0.992)]
    _credit_qat(rows, budget)
    assert rows[1].recovered_by == "int8_qat.file"
    _check_budget(rows, budget, tmp_path)  # does not raise

    for qat in (_row("int8_qat", 0.98), _row("int8_qat", 0.0, drop=None)):
        rows = [_row("fp32", 1.0), _row("int8", 0.97), qat]
        _credit_qat(rows, budget)
        assert rows[1].recovered_by is None
        with pytest.raises(AccuracyDropError, match="int8.file agrees .* Next: `recover`"):
            _check_budget(rows, budget, tmp_path)


def test_each_runtime_s_int8_row_is_covered_by_its_own_qat_twin(tmp_path):
    """An ONNX int8 file over budget is covered by the ONNX QAT file, never by the TFLite one
    (a user of ONNX Runtime needs an ONNX file that fits)."""
    from edgecv.converters.convert import _check_budget, _credit_qat
    from edgecv.errors import AccuracyDropError

    budget = Budget(0.5, 99.0)
    rows = [_row("fp32", 1.0), _row("int8", 0.97), _row("int8_qat", 0.992),
            _row("onnx_int8", 0.97), _row("onnx_int8_qat", 0.98)]
    _credit_qat(rows, budget)
    assert rows[1].recovered_by == "int8_qat.file" and rows[3].recovered_by is None
    with pytest.raises(AccuracyDropError, match="onnx_int8.file agrees .* Next: `recover`"):
        _check_budget(rows, budget, tmp_path)
    rows[4].agreement = 0.995
    _credit_qat(rows, budget)
    assert rows[3].recovered_by == "onnx_int8_qat.file"
    _check_budget(rows, budget, tmp_path)  # does not raise


def test_a_missed_budget_names_the_next_step_not_one_already_taken():
    from edgecv.converters.convert import way_out

    assert way_out("int8", {"fp32", "int8"}).startswith("`recover`")
    assert "`qat`" in way_out("int8", {"fp32", "int8"})
    assert way_out("int8", {"fp32", "int8", "int8_mixed"}).startswith("`qat`")  # recovery missed
    assert way_out("int8_mixed", {"fp32", "int8", "int8_mixed"}).startswith("`qat`")
    assert "`qat`" not in way_out("int8", {"fp32", "int8", "int8_qat"})
    assert way_out("int8_qat", {"fp32", "int8_qat"}).startswith("more `qat_epochs`")
    assert way_out("onnx_int8", {"onnx", "onnx_int8"}).startswith("`recover`")
    assert "`qat`" in way_out("onnx_int8", {"onnx", "onnx_int8"})  # QAT reaches ONNX too
    onnx_recovered = {"onnx", "onnx_int8", "onnx_int8_mixed"}
    assert way_out("onnx_int8", onnx_recovered).startswith("`qat`")
    assert way_out("onnx_int8_mixed", onnx_recovered).startswith("`qat`")
    assert way_out("onnx_int8", onnx_recovered | {"onnx_int8_qat"}).startswith("a larger")
    assert way_out("onnx_int8_qat", {"onnx", "onnx_int8_qat"}).startswith("more `qat_epochs`")
    assert "no quantization explains" in way_out("fp32", {"fp32"})


def _split(weights: float, activations: float) -> dict:
    """An int8 rounding split (edgecv.converters.rounding) with these agreements."""
    def part(agreement):
        return {"accuracy": 0.799, "agreement": agreement, "accuracy_drop_pp": 0.1,
                "agreement_drop_pp": round(100 * (1 - agreement), 3), "flips": 1,
                "exact_ties": 0}
    return {"kernels": 3, "weights": part(weights), "activations": part(activations)}


def test_the_way_out_follows_the_rounding_that_misses_alone(tmp_path):
    """Activations that miss alone call for 16-bit activations (--recover, then --int16x8), never
    QAT, which keeps them int8; weights that miss alone for float layers (--recover-mix float,
    16-bit activations cannot mend weights) or QAT; neither alone: the usual ladder. The split
    is the TFLite int8 file's: ONNX rows keep theirs. _check_budget passes the int8 row's on."""
    from edgecv.converters.convert import _check_budget, way_out
    from edgecv.errors import AccuracyDropError

    budget, tried = Budget(0.5, 99.0), {"fp32", "int8"}
    activations = _split(0.995, 0.9851)
    first = way_out("int8", tried, activations, budget)
    assert first.startswith("`recover` gives the layers that lose most 16-bit activations")
    assert "activations alone (weights exact) give 98.51% agreement, +0.10 pp" in first
    assert first.endswith("`qat` keeps int8 activations")
    assert way_out("int8", tried | {"int8_mixed"}, activations, budget).startswith("`formats=['int16x8']`")
    assert way_out("int8_mixed", tried | {"int8_mixed", "int16x8"}, activations,
                   budget).startswith("a larger `max_drop`")
    weights = _split(0.985, 0.995)
    assert way_out("int8", tried, weights, budget).startswith(
        "`recover` `recover_mix='float'` keeps the layers whose weights lose most in float, or "
        "`qat` to fine-tune them: the int8 weights alone (activations in float) give 98.50%")
    assert "`qat`" not in way_out("int8", tried | {"int8_qat"}, weights, budget)
    assert way_out("int8", tried, _split(0.995, 0.995), budget) == way_out("int8", tried)
    onnx = {"onnx", "onnx_int8"}
    assert way_out("onnx_int8", onnx, activations, budget) == way_out("onnx_int8", onnx)

    rows = [_row("fp32", 1.0), _row("int8", 0.98, rounding=activations)]
    with pytest.raises(AccuracyDropError, match=r"int8.file agrees .* Next: `recover` gives"):
        _check_budget(rows, budget, tmp_path)


def test_the_pipeline_report_says_which_rounding_lost_when_int8_missed():
    """The conversion section's text carries the int8 row's split when it has one, and says
    nothing of it otherwise."""
    from edgecv.run_report import conversion_section

    conversion = Conversion(run="run", keras_accuracy=0.8, test_images=7500,
                            calibration_samples=300,
                            artifacts=[_row("fp32", 1.0),
                                       _row("int8", 0.98, rounding=_split(0.992, 0.9907))])
    text = conversion_section(conversion).text
    assert ("weights alone 99.20% agreement (1 flips), activations alone 99.07% (1 flips, 0 "
            "exact ties)") in text
    conversion.artifacts[1] = dataclasses.replace(conversion.artifacts[1], rounding=None)
    assert "rounding" not in conversion_section(conversion).text
