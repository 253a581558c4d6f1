"""A smaller tensor arena for TensorFlow Lite Micro: the operator order and an offline memory plan.

TFLM plans the arena's head (micro_allocator.cc, micro_allocation_info.cc and
memory_planner/greedy_memory_planner.cc in tensorflow/tflite-micro): every tensor with no data in
the file, not a variable and of non-zero size gets a buffer of its bytes rounded up to 16, live
from the scope of the operator that writes it (graph inputs: scope 0) to the scope of the last
one that reads it (graph outputs: the last scope), the ``i``-th operator of the file being scope
``i + 1``; the scratch buffers kernels request while TFLM prepares them live during their
operator's scope. Its greedy planner places all of them largest first, each at the lowest offset
where it fits beside the buffers live at the same time. Two things leave memory unused, and this
module takes both back:

- the order: where branches leave a choice (inception blocks), another valid order keeps fewer
  bytes live at once (Liberis and Lane, "Neural networks on microcontrollers: saving memory at
  inference via operator reordering", 2019). :func:`best_order` finds the order with the lowest
  peak of live bytes, by dynamic programming over the sets of executed operators;
- the placement: first fit by size leaves gaps. :func:`pack` places the buffers closer to the
  peak of live bytes (which no placement can beat) and :func:`with_offline_plan` writes the
  tensors' offsets as TFLM's ``OfflineMemoryAllocation`` metadata: a buffer of int32 holding a
  version, the subgraph, the number of offsets ``n`` and one offset per tensor of the file (-1:
  planned by TFLM). TFLM keeps those offsets and places the scratch buffers, which are not in
  the file, first fit around them: :func:`pack` leaves them a gap at their operator.

Scratch buffers are modelled for the reference kernels measured here (``SCRATCH``: the reduce
operators MEAN, SUM, REDUCE_MAX and REDUCE_MIN; on every zoo model TFLM's head equals the head
predicted with them, benchmarks/results/mcu_arena.json). A vendor's kernels (CMSIS-NN, for
instance) request others; TFLM puts them in a gap at their operator if there is one, else above
the plan, so on such a build the head can exceed the one measured here.

:func:`smallest_arena` measures TFLM's own plan, the reordered file and the file with the offline
plan in TFLM's interpreter and keeps the smallest, with outputs identical. Pure numpy and the
TFLite schema: no TensorFlow.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from edgecv.errors import ModelFileError

ALIGNMENT = 16  # TFLM rounds every planned buffer up to this (MicroArenaBufferAlignment)
OFFLINE_PLAN_METADATA = "OfflineMemoryAllocation"
# TFLM reads neither the version nor the subgraph field (micro_allocation_info.cc).
OFFLINE_PLAN_VERSION = 1
# The exact search visits every set of executed operators closed under dependencies: one per
# operator for a chain, the product of the branch lengths inside a block of parallel branches.
# Beyond this many sets it stops and keeps the best order a greedy search finds.
MAX_EXACT_STATES = 100_000
# Operators whose effects are not all in their tensors (state, control flow, unknown custom
# code): a graph that holds one keeps its order.
_ORDERED_OPS = {"ASSIGN_VARIABLE", "READ_VARIABLE", "VAR_HANDLE", "CALL_ONCE", "IF", "WHILE",
                "CALL", "CUSTOM"}
_INTEGER_TYPES = {"int8", "uint8", "int16"}


def _reduce_scratch(op: str, input_type: str, input_rank: int, axis_count: int,
                    output_elements: int) -> tuple[int, ...]:
    """The scratch buffers (bytes) TFLM's reference reduce kernels request (reduce_common.cc):
    int32 accumulators for MEAN and SUM of integers, an int per input dimension and per axis."""
    accumulators = (4 * output_elements,) if op in ("MEAN", "SUM") \
        and input_type in _INTEGER_TYPES else ()
    return (*accumulators, 4 * input_rank, 4 * axis_count)


# operator name -> its scratch requests, for the reference kernels of the installed TFLM
# (tests/test_arena.py checks them against the head TFLM measures with each at the peak)
SCRATCH = {name: _reduce_scratch for name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN")}


def aligned(nbytes: int) -> int:
    """``nbytes`` rounded up to TFLM's buffer alignment (16)."""
    return -(-nbytes // ALIGNMENT) * ALIGNMENT


@dataclass(frozen=True)
class Graph:
    """Subgraph 0 of a .tflite file as TFLM's memory planner sees it.

    ``sizes``: planned tensor index -> bytes rounded up to 16 (tensors with data in the file,
    variables and empty tensors are not planned); ``scratch``: per operator, the scratch buffers
    its reference kernel requests (rounded up); ``op_inputs`` / ``op_outputs``: the tensors each
    operator reads and writes, in the file's order; ``inputs`` / ``outputs``: the graph's;
    ``tensor_count``: tensors in the file (the offline plan holds one offset each); ``fixed``:
    why the operators must keep their order (None when any valid order may run)."""

    sizes: dict[int, int]
    scratch: tuple[tuple[int, ...], ...]
    op_inputs: tuple[tuple[int, ...], ...]
    op_outputs: tuple[tuple[int, ...], ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    tensor_count: int
    fixed: str | None = None
    _predecessors: tuple[int, ...] = field(default=(), repr=False)

    @property
    def op_count(self) -> int:
        return len(self.op_inputs)

    def predecessors(self, op: int) -> int:
        """The operators ``op`` reads from, as a bit mask over the file's operator indices."""
        return self._predecessors[op]

    def file_order(self) -> tuple[int, ...]:
        return tuple(range(self.op_count))


class PlanUnsupported(ModelFileError):
    """A file this module cannot plan (several subgraphs, a tensor type of unknown size)."""


def read_graph(model: bytes) -> Graph:
    """The :class:`Graph` of ``model``'s first subgraph; :class:`PlanUnsupported` for a file
    with several subgraphs or a non-constant tensor of unknown byte size (strings, int4)."""
    from edgecv.runtime.integrity import ITEM_BYTES
    from edgecv.tflite_schema import builtin_op_names, tflite_schema

    schema = tflite_schema()
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    root = schema.Model.GetRootAs(model, 0)
    if root.SubgraphsLength() != 1:
        raise PlanUnsupported(f"the model has {root.SubgraphsLength()} subgraphs; the arena "
                              "planner handles single-subgraph models only.")
    graph = root.Subgraphs(0)
    op_names = builtin_op_names()
    codes = [op_names.get(max(root.OperatorCodes(i).BuiltinCode(),
                              root.OperatorCodes(i).DeprecatedBuiltinCode()), "?")
             for i in range(root.OperatorCodesLength())]
    shapes, types, sizes, variables = {}, {}, {}, 0
    for t in range(graph.TensorsLength()):
        tensor = graph.Tensors(t)
        shapes[t] = tensor.ShapeAsNumpy().tolist() if tensor.ShapeLength() else []
        types[t] = type_names.get(tensor.Type(), str(tensor.Type()))
        buffer = root.Buffers(tensor.Buffer()) if tensor.Buffer() < root.BuffersLength() else None
        if buffer is not None and (buffer.DataLength() or buffer.Offset() > 1):
            continue  # data in the file (a constant): never in the arena
        if tensor.IsVariable():
            variables += 1  # TFLM keeps variables in the tail, not in the plan
            continue
        if types[t] not in ITEM_BYTES:
            raise PlanUnsupported(f"tensor {t} is of type {types[t]}, whose size in TFLM's arena "
                                  "is not known here; the arena planner leaves this model to TFLM.")
        nbytes = int(np.prod(shapes[t], dtype=np.int64)) * ITEM_BYTES[types[t]]
        if nbytes > 0:
            sizes[t] = aligned(nbytes)
    op_inputs, op_outputs, scratch, ordered = [], [], [], set()
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        reads = [i for i in (op.InputsAsNumpy().tolist() if op.InputsLength() else []) if i >= 0]
        writes = [i for i in (op.OutputsAsNumpy().tolist() if op.OutputsLength() else []) if i >= 0]
        if op.OpcodeIndex() >= len(codes) or any(i >= len(shapes) for i in (*reads, *writes)):
            raise ModelFileError(f"operator {o} names an operator code or a tensor the file does "
                                 "not hold; the file is corrupt.")
        name = codes[op.OpcodeIndex()]
        op_inputs.append(tuple(dict.fromkeys(reads)))
        op_outputs.append(tuple(dict.fromkeys(writes)))
        requests = ()
        if name in SCRATCH and len(reads) >= 2 and writes:
            requests = SCRATCH[name](name, types[reads[0]], len(shapes[reads[0]]),
                                     int(np.prod(shapes[reads[1]], dtype=np.int64)),
                                     int(np.prod(shapes[writes[0]], dtype=np.int64)))
        scratch.append(tuple(aligned(n) for n in requests if n > 0))
        if name in _ORDERED_OPS or op.IntermediatesLength():
            ordered.add(name)
    inputs = tuple(graph.InputsAsNumpy().tolist()) if graph.InputsLength() else ()
    outputs = tuple(graph.OutputsAsNumpy().tolist()) if graph.OutputsLength() else ()
    producer, fixed = {}, None
    for o, written in enumerate(op_outputs):
        for t in written:
            if t in producer or t in inputs:
                fixed = f"tensor {t} is written twice"
            producer[t] = o
    predecessors = tuple(sum(1 << producer[t] for t in set(reads) if t in producer)
                         for reads in op_inputs)
    if ordered:
        fixed = f"operators whose order is not in their tensors ({', '.join(sorted(ordered))})"
    elif variables:
        fixed = f"{variables} variable tensor(s)"
    return Graph(sizes, tuple(scratch), tuple(op_inputs), tuple(op_outputs), inputs, outputs,
                 graph.TensorsLength(), fixed, predecessors)


def is_valid_order(graph: Graph, order) -> bool:
    """Whether ``order`` is a permutation of the operators that runs each after those it reads
    from (for a graph whose order is fixed: the file's order only)."""
    order = list(order)
    if sorted(order) != list(range(graph.op_count)):
        return False
    if graph.fixed is not None:
        return order == list(range(graph.op_count))
    done = 0
    for op in order:
        if graph.predecessors(op) & ~done:
            return False
        done |= 1 << op
    return True


def lifetimes(graph: Graph, order=None) -> dict[int, tuple[int, int]]:
    """Planned tensor -> (first scope, last scope) as TFLM computes them for the operators run in
    ``order`` (default: the file's): graph inputs from scope 0, an operator's outputs from its
    scope, every tensor until the scope of its last reader, graph outputs until the last scope.
    A tensor nothing writes, reads or returns gets (-1, -1), as in TFLM."""
    order = graph.file_order() if order is None else order
    first, last = {}, {}
    for t in graph.inputs:
        first.setdefault(t, 0)
        last.setdefault(t, 0)
    for scope, op in enumerate(order, 1):
        for t in graph.op_outputs[op]:
            first.setdefault(t, scope)
        for t in (*graph.op_inputs[op], *graph.op_outputs[op]):
            first.setdefault(t, 0)  # read but written by nothing: there from the start
            last[t] = scope
    for t in graph.outputs:
        first.setdefault(t, 0)
        last[t] = graph.op_count
    return {t: (first.get(t, -1), last.get(t, -1)) for t in graph.sizes}


def buffers(graph: Graph, order=None) -> tuple[dict[int, int], dict[int, tuple[int, int]]]:
    """(sizes, lifetimes) of every buffer TFLM plans for ``order`` (default: the file's): the
    planned tensors (by index) and the scratch buffers, numbered from ``graph.tensor_count`` in
    the order the operators request them."""
    order = graph.file_order() if order is None else order
    sizes, spans = dict(graph.sizes), lifetimes(graph, order)
    number = graph.tensor_count
    for scope, op in enumerate(order, 1):
        for nbytes in graph.scratch[op]:
            sizes[number], spans[number] = nbytes, (scope, scope)
            number += 1
    return sizes, spans


def live_bytes(graph: Graph, order=None) -> list[int]:
    """Bytes of buffers live at each scope 0..number of operators, for ``order`` (default: the
    file's)."""
    sizes, spans = buffers(graph, order)
    live = [0] * (graph.op_count + 1)
    for b, (first, last) in spans.items():
        for scope in range(max(first, 0), last + 1):
            live[scope] += sizes[b]
    return live


def peak_bytes(graph: Graph, order=None) -> int:
    """The peak of :func:`live_bytes` (buffers never used count alone, at scope -1): a lower
    bound of the head any placement needs for ``order``."""
    sizes, spans = buffers(graph, order)
    unused = sum(sizes[b] for b, span in spans.items() if span == (-1, -1))
    return max(max(live_bytes(graph, order)), unused)


# -- the order -------------------------------------------------------------------------------

@dataclass(frozen=True)
class OrderSearch:
    """What :func:`best_order` found: ``order`` (operator indices of the file, in the order to
    run them), its ``peak`` of live bytes, whether it is ``exact`` (the minimum over every valid
    order) or the best of a greedy search when the exact one would visit more than its limit of
    sets, and the sets visited (``states``)."""

    order: tuple[int, ...]
    peak: int
    exact: bool
    states: int


class _Residency:
    """Bytes live during an operator and resident after it, from the set of executed ones."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.readers = {t: 0 for t in graph.sizes}
        for op, reads in enumerate(graph.op_inputs):
            for t in reads:
                if t in self.readers:
                    self.readers[t] |= 1 << op
        written = {t for outs in graph.op_outputs for t in outs}
        # written by nothing (graph inputs): live from scope 0 until their last reader
        self.initial = [t for t in graph.sizes if t not in written
                        and (self.readers[t] or t in graph.outputs)]

    def needed_after(self, t: int, done: int) -> bool:
        return t in self.graph.outputs or bool(self.readers[t] & ~done)

    def start(self) -> tuple[int, int]:
        """(bytes live at scope 0: every graph input, bytes resident after it)."""
        sizes = self.graph.sizes
        resident = sum(sizes[t] for t in self.initial)
        unread = sum(sizes[t] for t in set(self.graph.inputs) if t in sizes
                     and t not in self.initial)
        return resident + unread, resident

    def step(self, resident: int, done: int, op: int) -> tuple[int, int]:
        """(bytes live during ``op`` run after the set ``done``, bytes resident after it)."""
        sizes, graph = self.graph.sizes, self.graph
        written = sum(sizes[t] for t in graph.op_outputs[op] if t in sizes)
        after = done | (1 << op)
        freed = sum(sizes[t] for t in graph.op_inputs[op] if t in sizes
                    and t not in graph.op_outputs[op] and not self.needed_after(t, after))
        kept = sum(sizes[t] for t in graph.op_outputs[op] if t in sizes
                   and self.needed_after(t, after))
        return resident + written + sum(graph.scratch[op]), resident - freed + kept


def best_order(graph: Graph, max_states: int = MAX_EXACT_STATES) -> OrderSearch:
    """The valid operator order with the lowest peak of live bytes: Liberis and Lane's dynamic
    programming over the sets of executed operators, exact up to ``max_states`` sets (default
    ``MAX_EXACT_STATES``), else the better of the file's order and a greedy one. Ties keep the
    file's order; so does a graph whose order is fixed (:attr:`Graph.fixed`)."""
    file_order, file_peak = graph.file_order(), peak_bytes(graph)
    if graph.fixed is not None or graph.op_count < 2:
        return OrderSearch(file_order, file_peak, graph.fixed is None, 1)
    residency = _Residency(graph)
    # one layer per number of executed operators: set -> (peak so far, resident, previous, op)
    layers = [{0: (*residency.start(), None, None)}]
    states = 1
    for _ in range(graph.op_count):
        following = {}
        for done, (peak, resident, _, _) in layers[-1].items():
            for op in range(graph.op_count):
                if done >> op & 1 or graph.predecessors(op) & ~done:
                    continue
                during, after = residency.step(resident, done, op)
                reached = done | (1 << op)
                if reached not in following:
                    states += 1
                    if states > max_states:
                        return _greedy_search(graph, residency, file_order, file_peak, states)
                if reached not in following or max(peak, during) < following[reached][0]:
                    following[reached] = (max(peak, during), after, done, op)
        layers.append(following)
    (peak, *_), = layers[-1].values()
    if peak >= file_peak:
        return OrderSearch(file_order, file_peak, True, states)
    order, done = [], (1 << graph.op_count) - 1
    for layer in reversed(layers[1:]):
        _, _, done, op = layer[done]
        order.append(op)
    order.reverse()
    return OrderSearch(tuple(order), peak_bytes(graph, order), True, states)


def _greedy_search(graph: Graph, residency: _Residency, file_order, file_peak: int,
                   states: int) -> OrderSearch:
    """The better of the file's order and :func:`_greedy_order`'s, marked not exact."""
    order = _greedy_order(graph, residency)
    peak = peak_bytes(graph, order)
    if peak >= file_peak:
        order, peak = file_order, file_peak
    return OrderSearch(tuple(order), peak, False, states)


def _greedy_order(graph: Graph, residency: _Residency) -> list[int]:
    """At each step the ready operator with the fewest bytes live during it, then the fewest
    resident after it (ties: the file's order)."""
    done, resident, order = 0, residency.start()[1], []
    for _ in range(graph.op_count):
        ready = [op for op in range(graph.op_count)
                 if not done >> op & 1 and not graph.predecessors(op) & ~done]
        op = min(ready, key=lambda o: residency.step(resident, done, o))
        resident = residency.step(resident, done, op)[1]
        done |= 1 << op
        order.append(op)
    return order


# -- the placement ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Placement:
    """Offsets in the arena's head for the buffers of :func:`buffers` (tensors by index, scratch
    buffers from ``tensor_count``), with their ``sizes``."""

    offsets: dict[int, int]
    sizes: dict[int, int]
    tensor_count: int

    @property
    def head(self) -> int:
        """The head this placement needs: the highest end of a buffer (0 for none)."""
        return max((self.offsets[b] + self.sizes[b] for b in self.offsets), default=0)

    @property
    def tensor_offsets(self) -> dict[int, int]:
        """The planned tensors' offsets (what an offline plan holds)."""
        return {b: o for b, o in self.offsets.items() if b < self.tensor_count}


def _place(items, spans: dict, sizes: dict, best_fit: bool) -> dict[int, int]:
    """Offsets for ``items`` placed one at a time in that order: each in the lowest gap (with
    ``best_fit``: the smallest) between the buffers already placed that share its time, else on
    top of them."""
    placed = {}
    for b in items:
        first, last = spans[b]
        busy = sorted((placed[u], placed[u] + sizes[u]) for u in placed
                      if spans[u][0] <= last and first <= spans[u][1])
        choice, choice_gap, cursor = None, None, 0
        for start, end in busy:
            gap = start - cursor
            if gap >= sizes[b] and (choice is None or gap < choice_gap):
                choice, choice_gap = cursor, gap
                if not best_fit:
                    break
            cursor = max(cursor, end)
        placed[b] = cursor if choice is None else choice
    return placed


def tflm_plan(graph: Graph, order=None) -> Placement:
    """TFLM's own greedy plan for ``order`` (default: the file's): largest first (ties: the
    higher number first, as TFLM fills its list from the end), each at the lowest offset where
    it fits."""
    sizes, spans = buffers(graph, order)
    items = sorted(sizes, key=lambda b: (-sizes[b], -b))
    return Placement(_place(items, spans, sizes, best_fit=False), sizes, graph.tensor_count)


def pack(graph: Graph, order=None, seed: int = 0, shuffles: int = 200) -> Placement:
    """A placement of every buffer for ``order`` (default: the file's), as small as found: the
    best of first fit and best fit over several placement orders (TFLM's own, largest first,
    largest size x lifetime first, by start, the buffers of the busiest scope first as in
    Pisarchyk and Lee's "greedy by breadth"), so never above TFLM's plan; then, while above
    the peak of live bytes, up to ``shuffles`` seeded (``seed``) perturbations of the best
    placement order (default 200, seed 0)."""
    sizes, spans = buffers(graph, order)
    if not sizes:
        return Placement({}, {}, graph.tensor_count)
    bound = peak_bytes(graph, order)
    live = live_bytes(graph, order)
    by_size = sorted(sizes, key=lambda b: (-sizes[b], b))
    tflm_order = sorted(sizes, key=lambda b: (-sizes[b], -b))
    by_area = sorted(sizes, key=lambda b: (-sizes[b] * (spans[b][1] - spans[b][0] + 1), b))
    by_start = sorted(sizes, key=lambda b: (spans[b][0], -sizes[b], b))
    by_breadth = {}
    for scope in sorted(range(len(live)), key=lambda s: (-live[s], s)):
        for b in sorted((b for b in sizes if spans[b][0] <= scope <= spans[b][1]),
                        key=lambda b: (-sizes[b], b)):
            by_breadth.setdefault(b)
    by_breadth = [*by_breadth, *(b for b in by_size if b not in by_breadth)]

    def head(offsets):
        return max(offsets[b] + sizes[b] for b in offsets)

    best, best_items, best_fit = None, None, False
    for items in (tflm_order, by_size, by_area, by_start, by_breadth):
        for fit in (False, True):
            offsets = _place(items, spans, sizes, fit)
            if best is None or head(offsets) < head(best):
                best, best_items, best_fit = offsets, items, fit
    rng = np.random.default_rng(seed)
    for _ in range(shuffles if len(best_items) > 1 else 0):
        if head(best) <= bound:
            break
        trial = list(best_items)  # a local move: swap a few neighbours in the placement order
        for i in rng.integers(0, len(trial) - 1, size=max(1, len(trial) // 20)):
            trial[i], trial[i + 1] = trial[i + 1], trial[i]
        offsets = _place(trial, spans, sizes, best_fit)
        if head(offsets) <= head(best):
            best, best_items = offsets, trial
    return Placement(best, sizes, graph.tensor_count)


def plan_problems(graph: Graph, offsets: dict[int, int], order=None, limit: int | None = None,
                  allow_online: bool = True) -> list[str]:
    """What is wrong with ``offsets`` (buffer -> offset, as :class:`Placement`) for ``order``
    (default: the file's), empty when nothing: an offset negative or not a multiple of 16, a
    buffer ending past ``limit`` bytes (when given), a planned tensor without an offset (unless
    ``allow_online``: TFLM places it), two buffers live at the same scope that overlap."""
    sizes, spans = buffers(graph, order)
    problems = []
    for t in graph.sizes:
        if offsets.get(t, -1) == -1 and not allow_online:
            problems.append(f"tensor {t} has no offset")
    placed = []
    for b, offset in offsets.items():
        if b not in sizes or offset == -1:
            continue
        if offset < 0 or offset % ALIGNMENT:
            problems.append(f"buffer {b} at offset {offset}: not a non-negative multiple of "
                            f"{ALIGNMENT}")
        elif limit is not None and offset + sizes[b] > limit:
            problems.append(f"buffer {b} ends at {offset + sizes[b]}, past the arena's {limit} "
                            "planned bytes")
        placed.append((offset, offset + sizes[b], b))
    placed.sort()
    for i, (start, end, b) in enumerate(placed):
        for other_start, other_end, u in placed[i + 1:]:
            if other_start >= end:
                break
            if spans[b][0] <= spans[u][1] and spans[u][0] <= spans[b][1]:
                problems.append(f"buffers {b} and {u} are live at the same time and overlap in "
                                f"[{other_start}, {min(end, other_end)})")
    return problems


# -- the file --------------------------------------------------------------------------------

def read_offline_plan(model: bytes) -> list[int] | None:
    """The offsets of ``model``'s ``OfflineMemoryAllocation`` metadata (one per tensor, -1 =
    planned by TFLM), or None without one; :class:`ModelFileError` when there are several or its
    buffer does not hold the header and as many offsets as it declares."""
    from edgecv.tflite_schema import tflite_schema

    root = tflite_schema().Model.GetRootAs(model, 0)
    found = [root.Metadata(i) for i in range(root.MetadataLength())
             if root.Metadata(i).Name() == OFFLINE_PLAN_METADATA.encode()]
    if not found:
        return None
    if len(found) > 1:
        raise ModelFileError(f"the model holds {len(found)} {OFFLINE_PLAN_METADATA} metadata; "
                             "TFLM would use the last one. Fix: keep one.")
    index = found[0].Buffer()
    data = root.Buffers(index).DataAsNumpy() if index < root.BuffersLength() else 0
    data = data.tobytes() if isinstance(data, np.ndarray) else b""
    if len(data) < 12 or len(data) % 4:
        raise ModelFileError(f"the {OFFLINE_PLAN_METADATA} buffer holds {len(data)} bytes, not a "
                             "header of three int32 and one int32 offset per tensor.")
    count = struct.unpack_from("<I", data, 8)[0]
    if len(data) != 4 * (3 + count):
        raise ModelFileError(f"the {OFFLINE_PLAN_METADATA} buffer declares {count} offsets but "
                             f"holds {len(data) // 4 - 3}.")
    return list(struct.unpack_from(f"<{count}i", data, 12))


def check_offline_plan(model: bytes, limit: int | None = None) -> int:
    """Check the offline plan in ``model`` against the file's own graph and operator order, as
    TFLM will use it, and return the bytes it places (the highest end of a planned tensor).

    :class:`ModelFileError` names the first problem: no plan or a malformed one, a count other
    than the file's tensors, an offset negative, unaligned or past ``limit`` (when given), a
    planned tensor left without one, two tensors live at the same time that overlap. Every file
    with a plan passes it before it leaves :func:`smallest_arena`."""
    offsets = read_offline_plan(model)
    if offsets is None:
        raise ModelFileError(f"the model has no {OFFLINE_PLAN_METADATA} metadata.")
    graph = read_graph(model)
    if len(offsets) != graph.tensor_count:
        raise ModelFileError(f"the offline plan holds {len(offsets)} offsets for "
                             f"{graph.tensor_count} tensors; TFLM refuses it.")
    planned = {t: offsets[t] for t in graph.sizes}
    problems = plan_problems(graph, planned, limit=limit, allow_online=False)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ModelFileError(f"malformed offline plan: {problems[0]}{more}.")
    return max((offsets[t] + graph.sizes[t] for t in graph.sizes), default=0)


def reordered(model: bytes, order) -> bytes:
    """``model`` with its operators stored (and so run) in ``order`` (operator indices of the
    file); an offline plan it held is dropped (it was planned for the old order).
    :class:`ModelFileError` if ``order`` is not a valid order of the graph."""
    from edgecv.tflite_schema import drop_metadata, pack_model, unpack_model

    order = [int(op) for op in order]
    if not is_valid_order(read_graph(model), order):
        raise ModelFileError(f"operator order {order[:12]}{'...' if len(order) > 12 else ''} is "
                             "not a valid order of the model's graph.")
    tree = unpack_model(model)
    operators = tree.subgraphs[0].operators
    tree.subgraphs[0].operators = [operators[op] for op in order]
    drop_metadata(tree, OFFLINE_PLAN_METADATA)
    return pack_model(tree, len(model) + 1024, files_of=model)


def with_offline_plan(model: bytes, offsets: dict[int, int]) -> bytes:
    """``model`` with the planned tensors' ``offsets`` (tensor index -> byte offset in the head;
    every other tensor gets -1) as TFLM's OfflineMemoryAllocation metadata, replacing one it
    held. :class:`ModelFileError` if the offsets fail :func:`plan_problems` for the file's order
    (a malformed plan is never written)."""
    from edgecv.tflite_schema import pack_model, set_metadata, unpack_model

    graph = read_graph(model)
    planned = {t: offsets.get(t, -1) for t in graph.sizes}
    problems = plan_problems(graph, planned, allow_online=False)
    if problems:
        raise ModelFileError(f"refusing to write a malformed offline plan: {problems[0]}.")
    values = [planned.get(t, -1) for t in range(graph.tensor_count)]
    payload = struct.pack(f"<3I{len(values)}i", OFFLINE_PLAN_VERSION, 0, len(values), *values)
    tree = unpack_model(model)
    set_metadata(tree, OFFLINE_PLAN_METADATA, payload)
    return pack_model(tree, len(model) + len(payload) + 1024, files_of=model)


# -- measured in TFLM ------------------------------------------------------------------------

def _probe_inputs(micro, count: int = 8, seed: int = 0) -> np.ndarray:
    """``count`` seeded random inputs over the whole range of the model's input type."""
    rng = np.random.default_rng(seed)
    shape, dtype = (count, *micro.input["shape"][1:]), micro.input["dtype"]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _check_loads(model: bytes) -> None:
    """LiteRT's flatbuffer verifier on ``model`` (TFLM runs none): ModelFileError if it refuses."""
    from ai_edge_litert.interpreter import Interpreter

    from edgecv.errors import first_line

    try:
        Interpreter(model_content=model)
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"LiteRT refuses the file: {first_line(exc)}") from exc


def smallest_arena(model: bytes, samples: np.ndarray | None = None) -> tuple[bytes, dict]:
    """Of TFLM's own plan (``model`` as it is), the reordered file and the file with an offline
    plan on the best order, the one whose arena TFLM measures smallest (total; ties keep the
    fewer changes), and a record of what was measured.

    Every candidate passes LiteRT's verifier and is measured in TFLM's interpreter; the one to
    be kept (smaller than TFLM's own plan) runs on ``samples`` (inputs in the model's input
    type, or normalised float images quantized here, e.g. the test split; default: 8 seeded
    random inputs over the type's range); one whose outputs differ from the original's in any
    element (the next smallest is tried then), or whose plan :func:`check_offline_plan` refuses, is rejected, and the record says why. The
    record: ``lower_bound`` (peak of live bytes over the best order: tensors and the modelled
    scratch buffers; ``lower_bound_exact``), per candidate TFLM's ``head`` and ``total`` and the
    head its plan predicts (``planned``), the ``chosen`` one, its ``saving_bytes`` and
    ``saving_percent`` of the arena against TFLM's own plan, and ``head_over_bound_percent``.
    Raises :class:`~edgecv.errors.BackendUnavailable` without tflite-micro and
    :class:`ModelFileError` if TFLM cannot run ``model`` itself."""
    from edgecv.runtime.integrity import check_tflite_tensor_sizes
    from edgecv.runtime.tflm import MicroInterpreter

    _check_loads(model)  # TFLM verifies nothing: LiteRT's verifier and sizes first
    check_tflite_tensor_sizes(model)
    original = MicroInterpreter(model)
    inputs = _probe_inputs(original) if samples is None else np.asarray(samples)
    if inputs.dtype.kind == "f" and original.input["dtype"].kind in "iu":
        inputs = original.quantize_input(inputs)  # normalised images, e.g. the test split
    record = {"verified_on": {"inputs": int(len(inputs)),
                              "source": "random (seeded)" if samples is None else "given"},
              "candidates": {"tflm": original.arena.to_dict()}}
    chosen, chosen_model, chosen_arena = "tflm", model, original.arena
    try:
        graph = read_graph(model)
    except PlanUnsupported as exc:
        record.update(chosen=chosen, head=chosen_arena.head, total=chosen_arena.total,
                      reason=str(exc), saving_bytes=0, saving_percent=0.0)
        return model, record
    search = best_order(graph)
    changed = search.order != graph.file_order()
    record.update(lower_bound=search.peak, lower_bound_exact=search.exact,
                  order_states=search.states, order_fixed=graph.fixed, order_changed=changed)
    record["candidates"]["tflm"]["planned"] = tflm_plan(graph).head

    def reordered_file():
        data = reordered(model, search.order)
        return data, tflm_plan(read_graph(data))

    def planned_file():
        base = reordered(model, search.order) if changed else model
        placement = pack(read_graph(base))
        return with_offline_plan(base, placement.tensor_offsets), placement

    candidates = [("reordered", reordered_file)] if changed else []
    measured = []  # (arena total, fewer changes first, name, bytes, interpreter)
    for name, build in (*candidates, ("offline_plan", planned_file)):
        entry = record["candidates"][name] = {"on_best_order": changed}
        try:
            data, plan = build()
            entry["planned"] = plan.head
            _check_loads(data)
            if name == "offline_plan":
                check_offline_plan(data)
            micro = MicroInterpreter(data)
            entry.update(micro.arena.to_dict())
            if name == "offline_plan":
                check_offline_plan(data, limit=micro.arena.head)
        except ModelFileError as exc:
            entry["rejected"] = str(exc)
            continue
        measured.append((micro.arena.total, len(measured), name, data, micro))
    # only a candidate that would be shipped runs the samples: the smallest first, the next
    # one if its outputs differ (the test split through TFLM's reference kernels is slow)
    reference = None
    for total, _, name, data, micro in sorted(measured, key=lambda m: m[:2]):
        if total >= chosen_arena.total:
            break
        if reference is None:
            reference = original.invoke(inputs)
        if not np.array_equal(micro.invoke(inputs), reference):
            record["candidates"][name]["rejected"] = "its outputs differ from the original's in TFLM"
            continue
        record["candidates"][name]["outputs_identical"] = True
        chosen, chosen_model, chosen_arena = name, data, micro.arena
        break
    saving = original.arena.total - chosen_arena.total
    record.update(chosen=chosen, head=chosen_arena.head, total=chosen_arena.total,
                  saving_bytes=saving, saving_percent=round(100 * saving / original.arena.total, 2),
                  head_over_bound_percent=round(100 * (chosen_arena.head / search.peak - 1), 2)
                  if search.peak else 0.0)
    return chosen_model, record
