"""The arena planner (edgecv.converters.arena): the live-tensor lower bound, the operator order
and the offline memory plan, measured in TFLite Micro's own interpreter.

Small float graphs built with the schema (tiny_tflite.dense_graph, no TensorFlow) have sizes
chosen so every figure can be worked out by hand; int8 files converted from Keras models (marked
tf) show the same on what the converter writes."""

import importlib.util
import itertools
import struct

import json
import re

import numpy as np
import pytest
from tiny_tflite import dense_graph

from edgecv.converters import arena
from edgecv.errors import ModelFileError

needs_tflm = pytest.mark.skipif(importlib.util.find_spec("tflite_micro") is None,
                                reason="the mcu extra (tflite-micro) is not installed")

# Two branches stored wide-first: x (16 floats, 64 B) feeds two dense layers of 256 floats
# (1024 B each), each narrowed to 4 floats (16 B), then added. In the file's order both wide
# tensors are live together (64 + 1024 + 1024 = 2112 B); finishing one branch first needs at
# most x + one wide tensor + one narrow one (64 + 1024 + 16 = 1104 B).
BRANCHES = [("dense", "input", 256), ("dense", "input", 256), ("dense", 0, 4), ("dense", 1, 4),
            ("add", 2, 3)]
# A MobileNet-like chain of activations of 3, 2, 2, 4 and 1 units of 256 B (64 floats), the first
# block of MLPerf Tiny's VWW MobileNet in proportion: TFLM's first fit by size puts the 4-unit
# tensor at 0, the input at 0, the second 2-unit tensor above the 4 and the first, which does not
# fit in the 1-unit gap above the input, on top: 8 units, where the peak of live bytes is 6.
CHAIN = [("dense", "input", 128), ("dense", 0, 128), ("dense", 1, 256), ("dense", 2, 64)]
UNIT = 256


def micro_outputs(model: bytes, inputs: np.ndarray) -> np.ndarray:
    from edgecv.runtime.tflm import MicroInterpreter

    return MicroInterpreter(model).invoke(inputs)


def litert_outputs(model: bytes, inputs: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=model,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    results = []
    for x in inputs:
        interpreter.set_tensor(inp["index"], x[None])
        interpreter.invoke()
        results.append(interpreter.get_tensor(out["index"])[0])
    return np.stack(results)


def float_inputs(width: int, count: int = 200) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((count, width)).astype(np.float32)


def brute_force_peak(graph: arena.Graph) -> int:
    """The lowest peak of live bytes over every permutation that is a valid order."""
    return min(arena.peak_bytes(graph, order)
               for order in itertools.permutations(range(graph.op_count))
               if arena.is_valid_order(graph, order))


def test_lifetimes_and_live_bytes_follow_tflm_s_scopes():
    graph = arena.read_graph(dense_graph(16, BRANCHES))
    # tensors: input 0, weights 1, t0 2, weights 3, t1 4, ... t3 8, t4 (the sum) 9
    assert graph.sizes == {0: 64, 2: 1024, 4: 1024, 6: 16, 8: 16, 9: 16}
    assert arena.lifetimes(graph) == {0: (0, 2), 2: (1, 3), 4: (2, 4), 6: (3, 5), 8: (4, 5),
                                      9: (5, 5)}
    assert arena.live_bytes(graph) == [64, 1088, 2112, 2064, 1056, 48]
    assert arena.peak_bytes(graph) == 2112
    order = (0, 2, 1, 3, 4)
    assert arena.lifetimes(graph, order)[2] == (1, 2) and arena.peak_bytes(graph, order) == 1104


def test_the_lower_bound_is_the_minimum_over_every_valid_order():
    graph = arena.read_graph(dense_graph(16, BRANCHES))
    valid = [order for order in itertools.permutations(range(5))
             if arena.is_valid_order(graph, order)]
    assert len(valid) == 6  # two chains of two merged: C(4, 2) orders, then the sum
    search = arena.best_order(graph)
    assert search.exact and search.peak == 1104 == brute_force_peak(graph) == 64 + 1024 + 16
    assert arena.is_valid_order(graph, search.order) and search.order != graph.file_order()
    # random trees of dense layers (every leaf an output): the search agrees with brute force
    rng = np.random.default_rng(0)
    for _ in range(4):
        ops = []
        for i in range(7):
            source = "input" if i == 0 or rng.random() < 0.3 else int(rng.integers(0, i))
            ops.append(("dense", source, int(rng.choice([4, 16, 64, 128, 256]))))
        sources = {source for _, source, _ in ops}
        leaves = [i for i in range(len(ops)) if i not in sources]
        graph = arena.read_graph(dense_graph(8, ops, outputs=leaves))
        search = arena.best_order(graph)
        assert search.exact and search.peak == brute_force_peak(graph)
        assert arena.is_valid_order(graph, search.order)
        # and its placement: well formed, between the bound and TFLM's own plan
        placement = arena.pack(graph, search.order)
        assert arena.plan_problems(graph, placement.offsets, search.order) == []
        assert search.peak <= placement.head <= arena.tflm_plan(graph, search.order).head


def test_a_search_too_large_falls_back_to_a_valid_greedy_order_and_says_so():
    graph = arena.read_graph(dense_graph(16, BRANCHES))
    search = arena.best_order(graph, max_states=3)
    assert not search.exact and arena.is_valid_order(graph, search.order)
    assert search.peak == arena.peak_bytes(graph, search.order) <= arena.peak_bytes(graph)


def test_a_graph_whose_order_is_not_all_in_its_tensors_keeps_it():
    from edgecv.tflite_schema import pack_model, unpack_model

    tree = unpack_model(dense_graph(16, BRANCHES))
    tree.subgraphs[0].tensors[6].isVariable = True  # state: another order could change results
    model = pack_model(tree, 8192)
    graph = arena.read_graph(model)
    assert "variable" in graph.fixed and 6 not in graph.sizes  # TFLM keeps it in the tail
    assert arena.best_order(graph).order == graph.file_order()
    with pytest.raises(ModelFileError, match="not a valid order"):
        arena.reordered(model, (0, 2, 1, 3, 4))
    tree.subgraphs.append(tree.subgraphs[0])
    with pytest.raises(arena.PlanUnsupported, match="2 subgraphs"):
        arena.read_graph(pack_model(tree, 16384))


def test_a_corrupt_graph_is_one_error_not_a_traceback():
    from edgecv.tflite_schema import pack_model, unpack_model

    tree = unpack_model(dense_graph(16, BRANCHES))
    tree.subgraphs[0].operators[1].inputs = [99, 3, -1]
    with pytest.raises(ModelFileError, match="corrupt"):
        arena.read_graph(pack_model(tree, 8192))


def test_an_order_that_breaks_a_dependency_is_refused():
    model = dense_graph(16, BRANCHES)
    with pytest.raises(ModelFileError, match="not a valid order"):
        arena.reordered(model, [2, 0, 1, 3, 4])  # t2 reads t0 before it is written
    with pytest.raises(ModelFileError, match="not a valid order"):
        arena.reordered(model, [0, 1, 2, 3])


def test_the_packing_reaches_the_bound_where_tflm_s_first_fit_leaves_a_gap():
    graph = arena.read_graph(dense_graph(192, CHAIN))
    assert arena.peak_bytes(graph) == 6 * UNIT
    assert arena.tflm_plan(graph).head == 8 * UNIT
    placement = arena.pack(graph)
    assert placement.head == 6 * UNIT
    assert arena.plan_problems(graph, placement.offsets, allow_online=False) == []


@needs_tflm
def test_tflm_measures_what_the_analysis_predicts_and_a_reordered_file_needs_less():
    from edgecv.runtime.tflm import MicroInterpreter

    model = dense_graph(16, BRANCHES)
    graph = arena.read_graph(model)
    assert MicroInterpreter(model).arena.head == arena.tflm_plan(graph).head == 2112
    better = arena.reordered(model, arena.best_order(graph).order)
    assert MicroInterpreter(better).arena.head == 1104
    assert MicroInterpreter(better).arena.total < MicroInterpreter(model).arena.total
    inputs = float_inputs(16)
    assert np.array_equal(micro_outputs(better, inputs), micro_outputs(model, inputs))
    # LiteRT loads the reordered file and computes the same
    assert np.array_equal(litert_outputs(better, inputs), litert_outputs(model, inputs))


@needs_tflm
def test_an_offline_plan_closes_the_gap_in_tflm_with_outputs_identical():
    from edgecv.runtime.tflm import MicroInterpreter

    model = dense_graph(192, CHAIN)
    graph = arena.read_graph(model)
    planned = arena.with_offline_plan(model, arena.pack(graph).tensor_offsets)
    offsets = arena.read_offline_plan(planned)
    assert len(offsets) == graph.tensor_count
    assert all(offsets[t] == -1 for t in range(graph.tensor_count) if t not in graph.sizes)
    assert arena.check_offline_plan(planned) == 6 * UNIT
    before, after = MicroInterpreter(model).arena, MicroInterpreter(planned).arena
    assert (before.head, after.head) == (8 * UNIT, 6 * UNIT)
    assert after.total == before.total - 2 * UNIT
    inputs = float_inputs(192)
    assert np.array_equal(micro_outputs(planned, inputs), micro_outputs(model, inputs))
    assert np.array_equal(litert_outputs(planned, inputs), litert_outputs(model, inputs))


def test_malformed_plans_are_found_and_never_written():
    model = dense_graph(192, CHAIN)
    graph = arena.read_graph(model)
    good = arena.pack(graph).tensor_offsets
    overlapping = {**good, 2: good[0]}  # t0 at the input's place while both are live
    assert any("overlap" in p for p in arena.plan_problems(graph, overlapping))
    assert any("multiple of 16" in p for p in arena.plan_problems(graph, {**good, 2: 8}))
    assert any("past the arena" in p for p in arena.plan_problems(graph, good, limit=5 * UNIT))
    assert any("no offset" in p for p in arena.plan_problems(
        graph, {t: o for t, o in good.items() if t != 2}, allow_online=False))
    for bad in (overlapping, {**good, 2: 8}, {**good, 2: -16}):
        with pytest.raises(ModelFileError, match="malformed"):
            arena.with_offline_plan(model, bad)
    # a plan written by something else is checked the way TFLM would use it
    with pytest.raises(ModelFileError, match="overlap"):
        arena.check_offline_plan(raw_plan(model, [overlapping.get(t, -1)
                                                  for t in range(graph.tensor_count)]))
    with pytest.raises(ModelFileError, match="offsets for"):
        arena.check_offline_plan(raw_plan(model, [0] * (graph.tensor_count - 1)))
    with pytest.raises(ModelFileError, match="declares"):
        arena.check_offline_plan(raw_plan(model, [0] * graph.tensor_count, count_delta=1))
    with pytest.raises(ModelFileError, match="no OfflineMemoryAllocation"):
        arena.check_offline_plan(model)
    planned = arena.with_offline_plan(model, good)
    with pytest.raises(ModelFileError, match="past the arena"):
        arena.check_offline_plan(planned, limit=5 * UNIT)


def raw_plan(model: bytes, offsets: list[int], count_delta: int = 0) -> bytes:
    """``model`` with an OfflineMemoryAllocation buffer written as given, unchecked."""
    from edgecv.tflite_schema import pack_model, tflite_schema, unpack_model

    schema = tflite_schema()
    tree = unpack_model(model)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(struct.pack(f"<3I{len(offsets)}i", 1, 0,
                                            len(offsets) + count_delta, *offsets), np.uint8)
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = "OfflineMemoryAllocation", len(tree.buffers) - 1
    tree.metadata = [entry]
    return pack_model(tree, len(model) + 4096)


@needs_tflm
def test_smallest_arena_keeps_the_candidate_tflm_measures_smallest():
    model = dense_graph(16, BRANCHES)
    chosen, record = arena.smallest_arena(model, float_inputs(16, 50))
    assert record["chosen"] == "reordered" and record["lower_bound"] == 1104
    assert record["head"] == 1104 and record["head_over_bound_percent"] == 0.0
    assert record["candidates"]["tflm"]["head"] == 2112
    assert record["saving_bytes"] == 2112 - 1104 == (record["candidates"]["tflm"]["total"]
                                                     - record["total"])
    assert record["verified_on"] == {"inputs": 50, "source": "given"}
    assert arena.read_graph(chosen).op_count == 5 and arena.read_offline_plan(chosen) is None

    model = dense_graph(192, CHAIN)
    chosen, record = arena.smallest_arena(model)
    assert record["chosen"] == "offline_plan" and not record["order_changed"]
    assert arena.check_offline_plan(chosen) == record["head"] == 6 * UNIT
    # planned again, the file is already the smallest: TFLM's own reading of it wins
    again, record = arena.smallest_arena(chosen)
    assert record["chosen"] == "tflm" and again == chosen and record["saving_bytes"] == 0


@needs_tflm
def test_smallest_arena_leaves_a_model_it_cannot_plan_as_it_is_and_says_why():
    from edgecv.tflite_schema import pack_model, unpack_model

    tree = unpack_model(dense_graph(16, BRANCHES))
    tree.subgraphs.append(tree.subgraphs[0])
    model = pack_model(tree, 16384)
    chosen, record = arena.smallest_arena(model)
    assert chosen == model and record["chosen"] == "tflm" and record["saving_bytes"] == 0
    assert "2 subgraphs" in record["reason"] and record["head"] > 0


@needs_tflm
def test_smallest_arena_rejects_a_candidate_that_computes_otherwise_or_is_malformed(monkeypatch):
    model = dense_graph(16, BRANCHES)
    real_reordered = arena.reordered

    def other_weights(data, order):  # same graph, other weights: its outputs differ
        return real_reordered(dense_graph(16, BRANCHES, seed=7), order)

    monkeypatch.setattr(arena, "reordered", other_weights)
    chosen, record = arena.smallest_arena(model)
    assert "outputs differ" in record["candidates"]["reordered"]["rejected"]
    assert "outputs differ" in record["candidates"]["offline_plan"]["rejected"]
    assert record["chosen"] == "tflm" and chosen == model

    monkeypatch.setattr(arena, "reordered", real_reordered)
    model = dense_graph(192, CHAIN)
    graph = arena.read_graph(model)
    squashed = arena.Placement({t: 0 for t in graph.sizes}, graph.sizes, graph.tensor_count)
    monkeypatch.setattr(arena, "pack", lambda graph: squashed)
    chosen, record = arena.smallest_arena(model)
    assert "malformed" in record["candidates"]["offline_plan"]["rejected"]
    assert record["chosen"] == "tflm" and arena.read_offline_plan(chosen) is None


# -- int8 files from the TFLite converter ------------------------------------------------------

def int8_file(model, shape, seed=0) -> bytes:
    import tensorflow as tf

    calibration = np.random.default_rng(seed).random((16, *shape), dtype=np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def int8_inputs(shape, count=100) -> np.ndarray:
    return np.random.default_rng(2).integers(-128, 128, (count, *shape)).astype(np.int8)


@pytest.mark.tf
@needs_tflm
def test_an_int8_inception_block_is_reordered_to_its_bound():
    import keras

    keras.utils.set_random_seed(0)
    # GoogLeNet's order of branches: 1x1 | 1x1 -> 3x3 | max pool -> 1x1; the pool's full-size
    # output is cheaper to hold before the other branches' outputs are waiting for the concat
    inputs = keras.Input((16, 16, 3))
    stem = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    b1 = keras.layers.Conv2D(16, 1, activation="relu")(stem)
    b3 = keras.layers.Conv2D(16, 1, activation="relu")(stem)
    b3 = keras.layers.Conv2D(24, 3, padding="same", activation="relu")(b3)
    pool = keras.layers.MaxPooling2D(3, 1, padding="same")(stem)
    pool = keras.layers.Conv2D(8, 1, activation="relu")(pool)
    merged = keras.layers.Concatenate()([b1, b3, pool])
    head = keras.layers.GlobalAveragePooling2D()(merged)
    model = int8_file(keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(head)),
                      (16, 16, 3))
    samples = int8_inputs((16, 16, 3))
    chosen, record = arena.smallest_arena(model, samples)
    assert record["order_changed"] and record["lower_bound_exact"]
    assert record["candidates"]["tflm"]["head"] > record["lower_bound"]
    assert record["head"] <= 1.02 * record["lower_bound"] and record["saving_bytes"] > 0
    assert np.array_equal(micro_outputs(chosen, samples), micro_outputs(model, samples))
    assert np.array_equal(litert_outputs(chosen, samples), litert_outputs(model, samples))


def mobilenet_chain() -> bytes:
    """MobileNet v1's first blocks (as MLPerf Tiny's VWW model) with an inverted residual after,
    full int8: TFLM's greedy plan leaves a gap an offline plan closes."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = keras.layers.Conv2D(16, 1, activation="relu6")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6")(x)
    y = keras.layers.Conv2D(32, 1, activation="relu6")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(y)
    x = keras.layers.Add()([x, keras.layers.Conv2D(16, 1)(y)])
    head = keras.layers.GlobalAveragePooling2D()(x)
    return int8_file(keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(head)),
                     (32, 32, 3))


@pytest.mark.tf
@needs_tflm
def test_an_int8_mobilenet_chain_gets_an_offline_plan_at_its_bound():
    model = mobilenet_chain()
    samples = int8_inputs((32, 32, 3))
    chosen, record = arena.smallest_arena(model, samples)
    assert record["chosen"] == "offline_plan"
    assert record["candidates"]["tflm"]["head"] > 1.1 * record["lower_bound"]
    assert record["head"] == arena.check_offline_plan(chosen) == record["lower_bound"]
    assert np.array_equal(micro_outputs(chosen, samples), micro_outputs(model, samples))
    assert np.array_equal(litert_outputs(chosen, samples), litert_outputs(model, samples))


@pytest.mark.tf
@needs_tflm
def test_the_mcu_export_ships_the_smaller_arena(tmp_path):
    """edgecv convert FILE.tflite --mcu ships the offline-planned bytes: model_data.cc's array
    and model.tflite are them, and mcu.json's arena is TFLM's measure of them, smaller than the
    file's own."""
    from edgecv.cli import app
    from edgecv.runtime.tflm import MicroInterpreter
    from typer.testing import CliRunner

    model = mobilenet_chain()
    source = tmp_path / "vww_like.tflite"
    source.write_bytes(model)
    result = CliRunner().invoke(app, ["convert", str(source), "--mcu"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "vww_like_mcu"
    shipped = (folder / "model.tflite").read_bytes()
    record = json.loads((folder / "mcu.json").read_text())
    assert record["plan"]["chosen"] == "offline_plan" and shipped != model
    assert arena.read_offline_plan(shipped) is not None
    own, measured = MicroInterpreter(model).arena, MicroInterpreter(shipped).arena
    assert {k: record["arena"][k] for k in ("total", "head", "tail")} == measured.to_dict()
    assert measured.total < own.total and record["plan"]["saving_bytes"] == own.total - measured.total
    assert record["verification"]["bit_exact_vs_reference_kernels"] is True
    c_bytes = bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})",
                                                   (folder / "model_data.cc").read_text()))
    assert c_bytes == shipped
    assert "less than TFLite Micro's own" in result.output


@pytest.mark.tf
@needs_tflm
@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_reference_kernels_scratch_buffers_are_in_the_bound(reduce):
    """A reduction at the peak: TFLM's head holds the tensors and the kernel's scratch buffers
    (int32 accumulators for MEAN, an int per dimension and per axis), as the analysis says."""
    import keras

    from edgecv.runtime.tflm import MicroInterpreter

    inputs = keras.Input((32, 32, 1))
    x = keras.layers.Conv2D(32, 1)(inputs)
    x = keras.layers.Lambda(lambda t: getattr(keras.ops, reduce)(t, axis=1))(x)
    x = keras.layers.Dense(4)(keras.layers.Flatten()(x))
    model = int8_file(keras.Model(inputs, x), (32, 32, 1))
    graph = arena.read_graph(model)
    tensors_only = max(sum(graph.sizes[t] for t, (first, last) in arena.lifetimes(graph).items()
                           if first <= scope <= last) for scope in range(graph.op_count + 1))
    accumulators = 32 * 32 * 4 if reduce == "mean" else 0  # 32 x 32 outputs, int32 each
    head = MicroInterpreter(model).arena.head
    assert head == arena.peak_bytes(graph) == tensors_only + accumulators + 16 + 16
    assert head == arena.tflm_plan(graph).head
