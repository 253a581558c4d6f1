"""What a missed accuracy budget tells the user to do next (no TensorFlow)."""


def test_a_missed_budget_names_the_next_step_not_one_already_taken():
    from edgecv.converters.convert import way_out

    assert way_out("int8", {"fp32", "int8"}).startswith("--recover")
    assert "--qat" in way_out("int8", {"fp32", "int8"})
    assert way_out("int8", {"fp32", "int8", "int8_mixed"}).startswith("--qat")  # recovery missed
    assert way_out("int8_mixed", {"fp32", "int8", "int8_mixed"}).startswith("--qat")
    assert "--qat" not in way_out("int8", {"fp32", "int8", "int8_qat"})
    assert way_out("int8_qat", {"fp32", "int8_qat"}).startswith("more --qat-epochs")
    assert way_out("onnx_int8", {"onnx", "onnx_int8"}).startswith("--recover")
    assert "--qat" not in way_out("onnx_int8", {"onnx", "onnx_int8"})  # QAT is TFLite only
    assert way_out("onnx_int8", {"onnx", "onnx_int8", "onnx_int8_mixed"}).startswith("a larger")
    assert "no quantization explains" in way_out("fp32", {"fp32"})
