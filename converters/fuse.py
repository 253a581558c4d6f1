"""A Keras model's export form: BatchNormalization folded into the convolution before a max pool.

The TFLite converter and tf2onnx fold a BatchNormalization into the convolution right before it,
but not across a pooling layer: ``Conv2D -> MaxPooling2D -> BatchNormalization`` (airbench's
block, and airnet's) reaches the file as a convolution, a pool and a separate per-channel MUL
and ADD. In int8 that MUL is quantized per tensor: a channel with a small variance has a large
multiplier, and the MUL's rounding then costs accuracy (measured on airnet with its Dirac
option: a RMSE of 5.4 quantization steps at the MUL against 0.3 elsewhere, int8 agreement
91%).

A BatchNormalization whose per-channel multiplier ``gamma / sqrt(var + eps)`` is positive
everywhere commutes with a max pool (``max(m x + b) = m max(x) + b`` for ``m > 0``), so it
folds into the convolution before the pool exactly as it would without one: the kernel scaled
by ``m`` per output channel, a bias ``(b - mean) m + beta``. :func:`export_form` rewrites every
such chain of a functional (or built Sequential) model (each tensor in it consumed only by the
next layer; a layer called several times, as in a ``--tta flip`` model, folds once), and
returns the original model when there is nothing to fold, the multipliers are not all
positive, or the folded model's outputs differ from the original's on the check images (it
never trades correctness for speed).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from typing import Callable

import numpy as np

from edgecv.converters.rundata import RunData

POOLS = ("MaxPooling2D",)
# float32 rounding of a folded kernel moves softmax scores by ~1e-6; 1e-4 (relative to a tensor's
# largest magnitude where that is above 1) leaves margin and still catches a wrong fold
TOLERANCE = 1e-4


def export_form(model, check_x: np.ndarray) -> tuple[object, list[str]]:
    """``(model, folds)``: the model with each foldable ``Conv2D -> MaxPooling2D ->
    BatchNormalization`` chain folded (see the module), and one line per fold (``"block1_bn1
    into block1_conv1 across block1_pool"``); ``(model, [])`` unchanged when nothing folds.
    ``check_x`` (normalised images) must give the same outputs to :data:`TOLERANCE`."""
    import keras

    source = model
    if isinstance(model, keras.Sequential) and model.built:  # the same layers as a graph
        try:
            source = keras.Model(model.inputs, model.outputs, name=model.name)
        except (ValueError, AttributeError):  # built without an Input: no graph to rewrite
            return model, []
    try:
        config = source.get_config()
    except (NotImplementedError, TypeError, AttributeError):  # a subclassed model
        return model, []
    if not isinstance(config, dict) or "layers" not in config or "output_layers" not in config:
        return model, []  # not a functional model
    chains = list(_foldable_chains(source, config))
    if not chains:
        return model, []

    folded_config = _without(config, chains)
    try:
        folded = keras.Model.from_config(folded_config)
    except Exception:  # an unusual config Keras cannot rebuild: keep the model as it is
        return model, []
    _copy_weights(source, folded, chains)
    if not _same_outputs(model, folded, check_x) or not _same_folded_tensors(
            keras, source, folded, chains, check_x):
        return model, []
    return folded, [f"{bn} into {conv} across {pool}" for conv, pool, bn in chains]


def _close(a, b) -> bool:
    """Equal to :data:`TOLERANCE` of the larger of 1 and ``a``'s largest magnitude."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(
        np.abs(a - b).max() <= TOLERANCE * max(1.0, float(np.abs(a).max())))


def _same_outputs(model, folded, check_x) -> bool:
    reference = model.predict(check_x, batch_size=256, verbose=0)
    outputs = folded.predict(check_x, batch_size=256, verbose=0)
    pairs = (zip(reference, outputs) if isinstance(reference, (list, tuple))
             else [(reference, outputs)])  # a model with several outputs: each of them
    return all(_close(a, b) for a, b in pairs)


def _graph_copy(model):
    """A copy of ``model`` with its weights, whose layers' first calls are in its own graph (a
    layer of a wrapped model, such as a ``--tta flip`` model's, was first called in the model it
    came from, so ``layer.output`` there is not this model's tensor). Rebuilt from its config,
    so each layer's calls keep their order (``keras.models.clone_model`` may trace the branches
    of a shared layer in another order). None where Keras cannot rebuild the model."""
    try:
        copy = type(model).from_config(model.get_config())
        for layer in copy.layers:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    except Exception:  # noqa: BLE001  (subclassed, custom objects: the caller keeps the model)
        return None
    return copy


def _same_folded_tensors(keras, source, folded, chains, check_x) -> bool:
    """Each folded pool's output against the BatchNormalization output it replaces: a
    saturated softmax can hide a wrong fold from the outputs, not from these."""
    copied = _graph_copy(source)
    if copied is None:
        return False
    before = keras.Model(copied.inputs, [copied.get_layer(bn).output for _, _, bn in chains])
    after = keras.Model(folded.inputs, [folded.get_layer(pool).output for _, pool, _ in chains])
    reference = before.predict(check_x, batch_size=256, verbose=0)
    outputs = after.predict(check_x, batch_size=256, verbose=0)
    if len(chains) == 1:
        reference, outputs = [reference], [outputs]
    return all(_close(a, b) for a, b in zip(reference, outputs))


def export_run(run: RunData, log: Callable[[str], None]) -> tuple[RunData, list[str]]:
    """``run`` with its Keras model in export form (:func:`export_form`, checked on 64 of its
    calibration images) and the folds made, logged; ``(run, [])`` as it is otherwise (a
    SavedModel reference, nothing to fold). What ``edgecv convert`` builds from and what
    ``edgecv inspect`` looks at."""
    if not hasattr(run.model, "get_config"):  # a SavedModel reference: converted as it is
        return run, []
    model, folded = export_form(run.model, run.calibration[:64])
    if not folded:
        return run, []
    log(f"folded for export (same outputs, a per-channel MUL and ADD fewer each): "
        f"{'; '.join(folded)}")
    return dataclasses.replace(run, model=model), folded


def _history(value) -> Iterator[list]:
    """Every ``keras_history`` ([layer, node, tensor]) in a node's arguments."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            yield value["config"]["keras_history"]
        else:
            for item in value.values():
                yield from _history(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _history(item)


def _foldable_chains(model, config: dict) -> Iterator[tuple[str, str, str]]:
    layers = {entry["name"]: entry for entry in config["layers"]}
    consumers: dict[str, set[str]] = {name: set() for name in layers}
    sources: dict[str, list[list]] = {}
    for name, entry in layers.items():
        sources[name] = [list(h) for node in entry.get("inbound_nodes", []) for h in _history(node)]
        for history in sources[name]:
            consumers.setdefault(history[0], set()).add(name)
    outputs = {item[0] for item in _outputs(config)}
    for name, entry in layers.items():
        if entry["class_name"] != "BatchNormalization" or not _last_axis(entry["config"]):
            continue
        pool = _only_source(sources[name])
        if pool is None or layers[pool]["class_name"] not in POOLS:
            continue
        conv = _only_source(sources[pool])
        if conv is None or layers[conv]["class_name"] != "Conv2D":
            continue
        conv_config = layers[conv]["config"]
        if conv_config.get("activation", "linear") != "linear":
            continue
        if consumers[conv] != {pool} or consumers[pool] != {name} or outputs & {conv, pool}:
            continue
        # node k of the BatchNormalization reads node k of the pool, which reads node k of the
        # convolution: the chain is the same at every call
        if not (_in_order(sources[name], pool) and _in_order(sources[pool], conv)):
            continue
        if (_multiplier(model.get_layer(name)) <= 0).any():
            continue  # a negative scale does not commute with max
        yield conv, pool, name


def _outputs(config: dict) -> list[list]:
    """The model's outputs as ``[layer, node, tensor]`` lists (one output is stored flat)."""
    outputs = config["output_layers"]
    return [outputs] if outputs and isinstance(outputs[0], str) else outputs


def _last_axis(config: dict) -> bool:
    axis = config.get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    return axis in (-1, 3)


def _only_source(histories: list[list]) -> str | None:
    names = {h[0] for h in histories}
    return names.pop() if len(names) == 1 else None


def _in_order(histories: list[list], source: str) -> bool:
    return all(h[0] == source and h[1] == k and h[2] == 0 for k, h in enumerate(histories))


def _multiplier(bn) -> np.ndarray:
    """``gamma / sqrt(moving_variance + epsilon)`` per channel (gamma 1 without ``scale``)."""
    variance = np.asarray(bn.moving_variance, np.float64)
    gamma = np.asarray(bn.gamma, np.float64) if bn.scale else np.ones_like(variance)
    return gamma / np.sqrt(variance + bn.epsilon)


def _without(config: dict, chains: list[tuple[str, str, str]]) -> dict:
    """``config`` with each chain's BatchNormalization removed (what read it reads the pool) and
    its convolution given a bias."""
    config = copy.deepcopy(config)
    bn_to_pool = {bn: pool for _, pool, bn in chains}
    convs = {conv for conv, _, _ in chains}
    config["layers"] = [entry for entry in config["layers"] if entry["name"] not in bn_to_pool]
    for entry in config["layers"]:
        if entry["name"] in convs:
            entry["config"]["use_bias"] = True
        for history in _history(entry.get("inbound_nodes", [])):
            if history[0] in bn_to_pool:
                history[0] = bn_to_pool[history[0]]
    for item in _outputs(config):
        if item[0] in bn_to_pool:
            item[0] = bn_to_pool[item[0]]
    return config


def _copy_weights(model, folded, chains: list[tuple[str, str, str]]) -> None:
    by_conv = {conv: bn for conv, _, bn in chains}
    for layer in folded.layers:
        original = model.get_layer(layer.name)
        if layer.name not in by_conv:
            layer.set_weights(original.get_weights())
            continue
        bn = model.get_layer(by_conv[layer.name])
        m = _multiplier(bn)
        weights = original.get_weights()
        kernel = np.asarray(weights[0], np.float64) * m  # (h, w, in, out): scale per out channel
        bias = np.asarray(weights[1], np.float64) if len(weights) > 1 else np.zeros_like(m)
        beta = np.asarray(bn.beta, np.float64) if bn.center else np.zeros_like(m)
        bias = (bias - np.asarray(bn.moving_mean, np.float64)) * m + beta
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
