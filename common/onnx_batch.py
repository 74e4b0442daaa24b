"""Make an ONNX file's batch dimension symbolic (``export_batch_size: 0``).

MindSpore 2.10's ONNX exporter refuses a dynamic input ("not support dynamic shape mode"), so the net is
exported at ``TRACE_BATCH`` and the graph rewritten where it holds that batch as a constant:

- the input's and outputs' first dimension becomes ``batch`` (``graph.value_info``, the fixed
  intermediate shapes, is dropped: runtimes infer it again);
- a ``Reshape`` whose shape constant starts with the batch gets ``0`` there (ONNX: copy the input's
  dimension), which is the batch as long as the input's first dimension is;
- a ``Concat`` of one activation with constant blocks of one value (``common.layers.zero_pad2d``: the
  border a padded max-pool concatenates) becomes the ``Pad`` it stands for, which any batch can take.

A fixed-batch export gets the Pad rewrite alone (OpenCV DNN imports a Pad, not those Concats).

Any other batch-sized constant (an ``Expand``/``Tile``/``ConstantOfShape`` shape, a constant block
concatenated otherwise) cannot be rewritten safely: ``BatchNotSymbolic`` names it, and the caller says
in one line why that file needs a fixed ``export_batch_size``.
"""
import numpy as np

# The batch the net is traced at before the rewrite: a value no channel count or kernel of ours takes, so a
# constant holding it is the batch, not a coincidence (1, 2, 3 and 4 are all common dimensions).
TRACE_BATCH = 7
SYMBOL = "batch"
_SHAPE_OPS = ("Expand", "Tile", "ConstantOfShape")


class BatchNotSymbolic(Exception):
    """The graph holds the traced batch where no rewrite is known to be safe (the message says where)."""


def _constants(graph):
    from onnx import numpy_helper
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _set_dim0(value_info, batch):
    dims = value_info.type.tensor_type.shape.dim
    if dims and dims[0].HasField("dim_value") and dims[0].dim_value == batch:
        dims[0].ClearField("dim_value")
        dims[0].dim_param = SYMBOL


def _pad_node(node, values, batch):
    """The ``Pad`` equal to ``node`` (a Concat of [const?, x, const?] with constants of one value), or None."""
    from onnx import helper, numpy_helper
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    live = [i for i, name in enumerate(node.input) if name not in values]
    if len(live) != 1:
        return None
    blocks = [values[name] for name in node.input if name in values]
    fill = {float(b.flat[0]) for b in blocks if b.size}
    if axis <= 0 or len(fill) != 1 or any(b.ndim < 2 or b.shape[0] != batch or np.ptp(b) != 0 for b in blocks):
        return None
    rank = blocks[0].ndim
    before = sum(values[name].shape[axis] for name in node.input[:live[0]])
    after = sum(values[name].shape[axis] for name in node.input[live[0] + 1:])
    pads = [0] * (2 * rank)
    pads[axis], pads[rank + axis] = before, after
    pads_name, fill_name = node.output[0] + "_pads", node.output[0] + "_fill"
    extra = [numpy_helper.from_array(np.array(pads, np.int64), pads_name),
             numpy_helper.from_array(np.array(fill.pop(), blocks[0].dtype), fill_name)]
    pad = helper.make_node("Pad", [node.input[live[0]], pads_name, fill_name], list(node.output),
                           name=(node.name or node.output[0]) + "_pad", mode="constant")
    return pad, extra, [name for name in node.input if name in values]


def make_batch_symbolic(model, batch=TRACE_BATCH, symbolic=True):
    """Rewrite ``model`` (an ``onnx.ModelProto`` traced at ``batch``) in place to take any batch.

    ``symbolic=False`` (a fixed-batch export) makes only the padding Concats ``Pad``: the same numbers, and
    OpenCV DNN 4.10 cannot import the Concat of constant blocks (MultiGrain's stem pool)."""
    graph = model.graph
    values = _constants(graph)
    nodes, dropped = [], set()
    for node in graph.node:
        where = f"{node.op_type} node '{node.name or node.output[0]}'"
        if not symbolic:
            rewrite = _pad_node(node, values, batch) if node.op_type == "Concat" else None
            if rewrite is not None:
                node, extra, consts = rewrite
                graph.initializer.extend(extra)
                dropped.update(consts)
        elif node.op_type == "Reshape" and node.input[1] in values:
            shape = values[node.input[1]]
            if shape.size and shape[0] == batch:
                from onnx import numpy_helper
                name = node.input[1] + "_any_batch"
                graph.initializer.append(numpy_helper.from_array(np.concatenate([[0], shape[1:]]).astype(shape.dtype),
                                                                 name))
                node.input[1] = name
        elif node.op_type == "Concat" and any(values[n].ndim and values[n].shape[0] == batch
                                              for n in node.input if n in values):
            rewrite = _pad_node(node, values, batch)
            if rewrite is None:
                raise BatchNotSymbolic(f"{where} concatenates a constant of the traced batch's size")
            node, extra, consts = rewrite
            graph.initializer.extend(extra)
            dropped.update(consts)
        elif node.op_type == "Flatten" and next((a.i for a in node.attribute if a.name == "axis"), 1) == 0:
            raise BatchNotSymbolic(f"{where} flattens the batch into one row")
        elif node.op_type in _SHAPE_OPS and len(node.input) > 1 and node.input[1] in values \
                and values[node.input[1]].size and values[node.input[1]].flat[0] == batch:
            raise BatchNotSymbolic(f"{where} builds a tensor of the traced batch's size from a constant shape")
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    keep = [t for t in graph.initializer if t.name in used or t.name not in dropped]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    if not symbolic:
        return model
    initializers = {t.name for t in graph.initializer}
    for value_info in list(graph.input) + list(graph.output):
        if value_info.name not in initializers:
            _set_dim0(value_info, batch)
    del graph.value_info[:]
    return model


def symbolic_batch_file(path, batch=TRACE_BATCH, symbolic=True):
    """Rewrite the ONNX file at ``path`` to take any batch (``symbolic=False``: its padding Concats only);
    ``BatchNotSymbolic`` (file untouched) if it cannot."""
    import onnx
    model = onnx.load(path)
    make_batch_symbolic(model, batch, symbolic)
    onnx.checker.check_model(model)
    onnx.save(model, path)
