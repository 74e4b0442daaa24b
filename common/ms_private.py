"""The private MindSpore internals this project uses, each behind one function, so that a MindSpore
release that moves one breaks here, in one place, with a message naming the version
(tests/test_ms_private.py runs each against the installed MindSpore).

- ``mindspore.log._get_logger``: the logger MindSpore's own warnings go through (``common.layers``
  filters one deprecation notice out of it);
- ``mindspore.train.mind_ir_pb2``: the protobuf of a MINDIR file, whose input shape MindSpore's public
  API only gives after loading the whole graph (``common.predict``)."""


class MovedInternal(RuntimeError):
    """A MindSpore internal this module relies on is not where it was (a bug to fix here, not a user error)."""


def _moved(what, err=None):
    import mindspore as ms
    detail = f" ({type(err).__name__}: {err})" if err else ""
    return MovedInternal(f"MindSpore {ms.__version__} has no {what}{detail}: this project was written against "
                         f"MindSpore 2.10; update common/ms_private.py")


def mindspore_logger():
    """The ``logging.Logger`` MindSpore's own messages go through (``mindspore.log._get_logger()``)."""
    from mindspore import log
    get_logger = getattr(log, "_get_logger", None)
    if get_logger is None:
        raise _moved("mindspore.log._get_logger")
    return get_logger()


def _mindir_graph(path):
    try:
        from mindspore.train.mind_ir_pb2 import ModelProto
    except ImportError as err:
        raise _moved("mindspore.train.mind_ir_pb2.ModelProto", err) from err
    proto = ModelProto()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    return proto.graph


def mindir_input_shape(path):
    """The shape of a MINDIR's first input (-1 for a dynamic dimension), read from the file's protobuf;
    None if it has none."""
    graph = _mindir_graph(path)
    tensors = graph.input[0].tensor if graph.input else []
    return tuple(int(d) for d in tensors[0].dims) if tensors else None


def _attr_shapes(attr):
    """Tensor shapes inside a MINDIR ``AttributeProto`` (a tuple output keeps its items in ``values``)."""
    return [tuple(int(d) for d in t.dims) for t in attr.tensors] + [s for v in attr.values for s in _attr_shapes(v)]


def mindir_output_shapes(path):
    """The shape of each output tensor of a MINDIR (-1 for a dynamic dimension; a tuple output gives one shape
    per item), from the file's protobuf."""
    shapes = []
    for out in _mindir_graph(path).output:
        shapes += [tuple(int(d) for d in t.dims) for t in out.tensor] or _attr_shapes(out.attr_info)
    return shapes
