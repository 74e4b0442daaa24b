"""Predict top-k classes for image files with a checkpoint, an exported MINDIR or an ONNX file; evaluate an
exported file on the val split (eval.py dispatches here by suffix)."""
import os

import numpy as np

from common.data import class_names
from common.errors import DatasetError, UserError, WeightsError


def _to_numpy(out):
    """A cell's output as numpy; a cell with several outputs (``net_to_cell``) gives a tuple."""
    return tuple(o.asnumpy() for o in out) if isinstance(out, (tuple, list)) else out.asnumpy()


EXPORTED_SUFFIXES = (".mindir", ".onnx")


def is_exported(path, backend="mindspore"):
    """True for an exported file (run by ``Predictor``), False for a checkpoint (built by the registry)."""
    return backend == "onnxruntime" or os.path.splitext(path)[1].lower() in EXPORTED_SUFFIXES


def _fixed(dim):
    """False for a dynamic dimension: a name (ONNX) or -1 (MINDIR)."""
    return isinstance(dim, int) and dim > 0


class Predictor:
    """Outputs for a preprocessed batch from a .ckpt (via the registry), a .mindir or an .onnx file.

    The one model backend of predict, eval of exported files and MultiGrain's embeddings:
    ``fixed_batch`` is the batch an exported file was made for (None: any batch), ``input_shape``
    its input's shape (None for a checkpoint)."""

    def __init__(self, cfg, build_net=None, net_to_cell=None):
        path = cfg.ckpt_file
        if not path:
            raise DatasetError("no model to predict with: pass --ckpt_file (.ckpt, .mindir or .onnx)")
        if not os.path.isfile(path):
            raise WeightsError(f"model file not found: {path}")
        kind = os.path.splitext(path)[1].lower()
        self.input_shape = None  # (N, C, H, W) an exported file was made for
        if cfg.backend == "onnxruntime" or kind == ".onnx":
            try:
                import onnxruntime as ort
            except ImportError:
                raise UserError(f"{path}: ONNX models need onnxruntime (pip install onnxruntime)") from None
            try:
                self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            except Exception as err:  # pylint: disable=broad-except  # onnxruntime's Fail/InvalidProtobuf
                raise WeightsError(f"{path} ({os.path.getsize(path)} bytes) is not a loadable ONNX model "
                                   f"(truncated, or another format): {str(err).splitlines()[0][:200]}") from None
            model_input = self.session.get_inputs()[0]
            self.input_name = model_input.name
            self.run = lambda x: self.session.run(None, {self.input_name: x})[0]
            self.input_shape = tuple(model_input.shape)
        elif kind == ".mindir":
            import mindspore as ms
            from mindspore import nn
            from common.ms_private import mindir_input_shape
            try:
                graph = nn.GraphCell(ms.load(path))
            except Exception as err:  # pylint: disable=broad-except  # MindSpore's RuntimeError text
                raise WeightsError(f"{path} ({os.path.getsize(path)} bytes) is not a loadable MINDIR file "
                                   f"(truncated, or another format)") from None
            self.run = lambda x: graph(ms.Tensor(x)).asnumpy()
            self.input_shape = mindir_input_shape(path) or (cfg.export_batch_size,)
        else:
            import mindspore as ms
            net = build_net(cfg, path)
            net.set_train(False)
            cell = net_to_cell(net) if net_to_cell else net
            self.run = lambda x: _to_numpy(cell(ms.Tensor(x)))
        self.fixed_batch = self.input_shape[0] if self.input_shape and _fixed(self.input_shape[0]) else None
        self._check_image_size(path, cfg.image_size)

    def _check_image_size(self, path, image_size):
        # the classic "accuracy dropped after export": preprocessing that differs from the export's
        side = self.input_shape[2:] if self.input_shape and len(self.input_shape) == 4 else ()
        if side and all(map(_fixed, side)) and tuple(side) != (image_size, image_size):
            raise DatasetError(f"{path} takes {side[0]}x{side[1]} images but image_size is {image_size}: "
                               f"pass --image_size {side[0]} (it was exported for "
                               f"{'x'.join(map(str, self.input_shape[1:]))} inputs)")

    def __call__(self, batch):
        if not isinstance(self.fixed_batch, int) or self.fixed_batch == len(batch):
            return self.run(batch)
        # An exported file has a fixed batch: feed it piece by piece, padding the last piece.
        size, outs = self.fixed_batch, []
        for start in range(0, len(batch), size):
            part = batch[start:start + size]
            padded = np.concatenate([part, np.zeros((size - len(part),) + part.shape[1:], part.dtype)])
            outs.append(self.run(padded)[:len(part)])
        return np.concatenate(outs)


def softmax(logits):
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def topk_results(logits, paths, names, k=5):
    """Per image ``{'class_ids', 'scores', 'file_name', 'label_names'}`` (PaddleClas layout)."""
    probs = softmax(np.asarray(logits, np.float64))
    results = []
    for prob, path in zip(probs, paths):
        ids = np.argsort(-prob, kind="stable")[:k]
        results.append({"class_ids": [int(i) for i in ids], "scores": [round(float(prob[i]), 5) for i in ids],
                        "file_name": path,
                        "label_names": [names[i] if names and i < len(names) else str(i) for i in ids]})
    return results


def predicted(cfg, predictor, paths):
    """(positions, outputs, skipped positions) per batch of ``paths`` through the eval pipeline; a last
    ``([], None, skipped)`` for unreadable files at the end. Positions index ``paths``."""
    from common.predict_inputs import predict_batches
    done = 0
    size = predictor.fixed_batch or cfg.eval_batch_size or cfg.batch_size  # an export's own batch: no padding
    for images, positions in predict_batches(cfg, paths, size):
        positions = positions.tolist()
        kept = set(positions)
        yield positions, predictor(images), [i for i in range(done, positions[-1]) if i not in kept]
        done = positions[-1] + 1
    yield [], None, list(range(done, len(paths)))


def skipped_row(path):
    """The results row of an image that could not be read (the reader's warning, or C++ Decode's refusal)."""
    from common.data.dataset import SkipReport
    return {"file_name": path, "error": SkipReport.reason(path) or f"unreadable image {path}: Decode refused it"}


def in_order(rows, skipped, paths):
    """``rows`` ({position: row}) and the skipped images' rows, in image order."""
    rows.update({i: skipped_row(paths[i]) for i in skipped})
    return [rows[i] for i in sorted(rows)]


def check_some_read(sink, paths):
    if sink.failed == len(paths):
        raise DatasetError(f"none of the {len(paths)} images could be read (first: {paths[0]})")


def predict(cfg, hooks=None):
    """Top-k classes of ``predict_path``'s images, batch by batch, to the console or ``results_file``."""
    from common.predict_inputs import image_paths
    from common.predict_results import ResultSink
    from common.runtime import build_net, init_device, single_device
    paths = image_paths(cfg.predict_path, cfg.data_path)
    sink = ResultSink(cfg.results_file, len(paths), cfg.topk)  # a bad name stops here, before the model loads
    init_device(single_device(cfg))
    predictor = Predictor(cfg, build_net)
    names = class_names(cfg)
    results = []
    for positions, logits, skipped in predicted(cfg, predictor, paths):
        rows = dict(zip(positions, topk_results(logits, [paths[i] for i in positions], names, cfg.topk))
                    if positions else {})
        rows = in_order(rows, skipped, paths)
        sink.add(rows)
        if not cfg.results_file:
            results += rows  # the console's few; a results file's many are not held
    sink.close()
    check_some_read(sink, paths)
    return results


def evaluate_exported(cfg, hooks=None):
    """eval.py for an exported .mindir/.onnx: the val split through the same pipeline and metrics as a
    checkpoint's eval, batched at the file's fixed batch (the last batch padded, the pad not counted)."""
    from common.data import create_dataset
    from common.metrics import METRIC_NAMES, metrics
    from common.runtime import init_device, single_device
    init_device(single_device(cfg))
    predictor = Predictor(cfg)
    batch = predictor.fixed_batch if isinstance(predictor.fixed_batch, int) else None
    counters = metrics()
    for image, label in create_dataset(cfg, "val", batch_size=batch).create_tuple_iterator(output_numpy=True):
        logits = predictor(image)
        if logits.ndim != 2 or logits.shape[1] != cfg.num_classes:
            raise UserError(f"{cfg.ckpt_file} outputs shape {tuple(logits.shape)}, not {cfg.num_classes} class "
                            f"scores per image: evaluate a classifier export (or set --num_classes)")
        for counter in counters.values():
            counter.update(logits, label)
    result = {k: float(counters[k].eval()) for k in METRIC_NAMES}
    print(f"result: {result} ckpt= {os.path.abspath(cfg.ckpt_file)}", flush=True)
    return result
