"""The private MindSpore internals common/ms_private.py reaches into still exist in the installed MindSpore
and do what the project uses them for; when a release moves one, the error names the MindSpore version."""
import logging
import sys

import numpy as np
import pytest

import common  # noqa: F401  (CPU fast path first)
import mindspore as ms
from mindspore import log, nn

from common.ms_private import MovedInternal, mindir_input_shape, mindir_output_shapes, mindspore_logger


def test_the_logger_is_the_one_mindspore_reports_through():
    """common.layers filters MaxPoolWithArgmax's deprecation notice out of this logger: MindSpore's own
    log calls must pass through it."""
    seen = []
    probe = logging.Filter()
    probe.filter = lambda record: seen.append(record.getMessage()) and False  # noted, and not printed
    logger = mindspore_logger()
    logger.addFilter(probe)
    try:
        log.error("probe from test_ms_private")
    finally:
        logger.removeFilter(probe)
    assert any("probe from test_ms_private" in message for message in seen)


def test_the_mindir_input_shape_is_read_from_the_file(tmp_path):
    net = nn.SequentialCell([nn.Conv2d(3, 4, 3, pad_mode="pad", padding=1), nn.ReLU()])
    net.set_train(False)
    ms.export(net, ms.Tensor(np.zeros((2, 3, 8, 8), np.float32)), file_name=str(tmp_path / "tiny"),
              file_format="MINDIR")
    assert mindir_input_shape(str(tmp_path / "tiny.mindir")) == (2, 3, 8, 8)


class _TwoMaps(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, pad_mode="pad", padding=1)

    def construct(self, x):
        return x, self.conv(x)


def test_the_mindir_output_shapes_are_read_from_the_file_tuple_or_not(tmp_path):
    """A dynamic batch reads -1; a tuple output (a backbone's maps) one shape per item."""
    net = _TwoMaps()
    net.set_train(False)
    ms.export(net, ms.Tensor(shape=[None, 3, 8, 8], dtype=ms.float32), file_name=str(tmp_path / "two"),
              file_format="MINDIR")
    ms.export(net.conv, ms.Tensor(np.zeros((2, 3, 8, 8), np.float32)), file_name=str(tmp_path / "one"),
              file_format="MINDIR")
    assert mindir_input_shape(str(tmp_path / "two.mindir")) == (-1, 3, 8, 8)
    assert mindir_output_shapes(str(tmp_path / "two.mindir")) == [(-1, 3, 8, 8), (-1, 4, 4, 4)]
    assert mindir_output_shapes(str(tmp_path / "one.mindir")) == [(2, 4, 4, 4)]


def test_a_moved_internal_is_reported_with_the_mindspore_version(monkeypatch, tmp_path):
    monkeypatch.delattr(log, "_get_logger")
    with pytest.raises(MovedInternal, match=rf"MindSpore {ms.__version__} has no mindspore\.log\._get_logger"):
        mindspore_logger()
    monkeypatch.setitem(sys.modules, "mindspore.train.mind_ir_pb2", None)  # as if the module were gone
    with pytest.raises(MovedInternal, match=rf"MindSpore {ms.__version__} has no mindspore\.train\.mind_ir_pb2"):
        mindir_input_shape(str(tmp_path / "any.mindir"))
