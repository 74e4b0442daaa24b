"""Predict top-k classes for image files with a checkpoint, an exported MINDIR or an ONNX file."""
import os

import numpy as np

from common.data import class_names, read_rgb
from common.data.samples import IMG_EXTENSIONS, DatasetError
from common.errors import UserError, WeightsError


def image_paths(spec):
    """Files from ``spec``: one image, comma-separated images, or a folder (recursively, sorted)."""
    paths = []
    for item in [s for s in spec.split(",") if s]:
        if os.path.isdir(item):
            paths += sorted(os.path.join(d, f) for d, _, fs in os.walk(item) for f in fs
                            if f.lower().endswith(IMG_EXTENSIONS))
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise DatasetError(f"no such image or folder: {item}")
    if not paths:
        raise DatasetError(f"no images found in {spec!r}")
    return paths


def preprocess(cfg, paths):
    """The eval transforms (same as eval.py) applied eagerly: an NCHW float32 batch."""
    from common.data.transforms import create_transforms
    ops = create_transforms(cfg, is_training=False)
    images = []
    for path in paths:
        image = read_rgb(path)
        for op in ops:
            image = op(image)
        images.append(image)
    return np.stack(images).astype(np.float32)


class Predictor:
    """Logits for a preprocessed batch from a .ckpt (via the registry), a .mindir or an .onnx file."""

    def __init__(self, cfg, build_net=None):
        path = cfg.ckpt_file
        if not path:
            raise DatasetError("no model to predict with: pass --ckpt_file (.ckpt, .mindir or .onnx)")
        if not os.path.isfile(path):
            raise WeightsError(f"model file not found: {path}")
        kind = os.path.splitext(path)[1].lower()
        self.input_shape = None  # (C, H, W) an exported file was made for
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
            self.fixed_batch = model_input.shape[0]
            self.input_shape = tuple(model_input.shape[1:])
        elif kind == ".mindir":
            import mindspore as ms
            from mindspore import nn
            try:
                graph = nn.GraphCell(ms.load(path))
            except Exception as err:  # pylint: disable=broad-except  # MindSpore's RuntimeError text
                raise WeightsError(f"{path} ({os.path.getsize(path)} bytes) is not a loadable MINDIR file "
                                   f"(truncated, or another format)") from None
            self.run = lambda x: graph(ms.Tensor(x)).asnumpy()
            self.fixed_batch = cfg.export_batch_size
        else:
            import mindspore as ms
            net = build_net(cfg, path)
            net.set_train(False)
            self.run = lambda x: net(ms.Tensor(x)).asnumpy()
            self.fixed_batch = None

    def check_input(self, batch, path):
        """An exported model takes one image size: say so instead of the runtime's shape error."""
        fixed = self.input_shape
        if fixed and all(isinstance(d, int) for d in fixed) and tuple(batch.shape[1:]) != fixed:
            raise UserError(f"{path} takes {'x'.join(map(str, fixed))} images but the config gives "
                            f"{'x'.join(map(str, batch.shape[1:]))}: set --image_size {fixed[-1]}")

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


def predict(cfg, hooks=None):
    from common.engine import build_net, init_device, _single
    if not cfg.predict_path:
        raise DatasetError("nothing to predict: pass --predict_path IMAGE[,IMAGE...] or a folder")
    init_device(_single(cfg))
    paths = image_paths(cfg.predict_path)
    predictor = Predictor(cfg, build_net)
    batch = preprocess(cfg, paths)
    predictor.check_input(batch, cfg.ckpt_file)
    logits = predictor(batch)
    results = topk_results(logits, paths, class_names(cfg), cfg.topk)
    for result in results:
        print(result, flush=True)
    return results
