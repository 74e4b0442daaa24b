"""The export task: the checkpoint's net (or the cell its family exports, or the backbone) to MINDIR,
ONNX or AIR, written atomically, its BatchNorms folded into the convolutions (``fold_bn``), for a fixed
batch or any batch (``export_batch_size: 0``). docs/export.md."""
import os

from common.errors import UserError
from common.family import SHARED_EXPORT_HEADS, export_heads
from common.onnx_batch import TRACE_BATCH, BatchNotSymbolic, symbolic_batch_file
from common.runtime import init_device, single_device

EXPORT_FORMATS = ("MINDIR", "ONNX", "AIR")
_SUFFIXES = {"MINDIR": ".mindir", "ONNX": ".onnx", "AIR": ".air"}


def export(cfg, hooks):
    import numpy as np
    import mindspore as ms
    from common.checkpoint import write_atomic
    from common.outputs import make_output_dir
    from common.runtime import build_backbone, build_net

    fmt = cfg.file_format.upper()
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"file_format must be one of {', '.join(EXPORT_FORMATS)}, not '{cfg.file_format}'")
    if fmt == "AIR" and cfg.device_target != "Ascend":
        raise UserError("AIR export needs an Ascend device (--device_target Ascend with MindSpore for Ascend); "
                        "on CPU/GPU export MINDIR or ONNX")
    if fmt == "AIR" and cfg.export_batch_size == 0:
        raise UserError("AIR export takes a fixed batch: pass --export_batch_size N (N >= 1)")
    if not cfg.ckpt_file:
        raise UserError("no checkpoint to export: pass --ckpt_file PATH")
    if cfg.export_head not in export_heads(cfg.model):  # another family's own head
        raise UserError(f"export_head must be {' or '.join(SHARED_EXPORT_HEADS)} for {cfg.model}, "
                        f"not '{cfg.export_head}'")
    init_device(single_device(cfg))
    if cfg.export_head == "features":  # the backbone: one output per feature map
        cell = build_backbone(cfg, cfg.ckpt_file)
    else:
        net = build_net(cfg, cfg.ckpt_file)
        net.set_train(False)
        cell = hooks.export_network(cfg, net) if hooks.export_network else net
    cell.set_train(False)
    if cfg.fold_bn:
        from common.fold import fold_checked
        folded = fold_checked(cell, cfg.image_size, cfg.model)
        print(f"folded {folded} BatchNorm{'s' * (folded != 1)} into the convolutions before them", flush=True)
    file_name = cfg.file_name or os.path.join(cfg.output_dir, cfg.model)
    suffix = _SUFFIXES[fmt]
    path = os.path.abspath(file_name if file_name.endswith(suffix) else file_name + suffix)
    make_output_dir(os.path.dirname(path))
    dynamic = cfg.export_batch_size == 0
    side = (3, cfg.image_size, cfg.image_size)
    if dynamic and fmt == "MINDIR":  # MINDIR keeps a dynamic batch natively
        dummy = ms.Tensor(shape=[None, *side], dtype=ms.float32)
    else:  # ONNX: traced at a fixed batch, made symbolic afterwards (MindSpore's ONNX export refuses None)
        dummy = ms.Tensor(np.zeros((cfg.export_batch_size or TRACE_BATCH, *side), np.float32))

    def write(tmp):
        ms.export(cell, dummy, file_name=tmp, file_format=fmt)
        if fmt == "ONNX":  # fixed batch: the padding Concats become Pad (OpenCV DNN imports it); 0: any batch
            try:
                symbolic_batch_file(tmp, cfg.export_batch_size or TRACE_BATCH, symbolic=dynamic)
            except BatchNotSymbolic as err:
                raise UserError(f"{cfg.model} cannot be exported to ONNX for any batch ({err}): "
                                f"pass a fixed --export_batch_size N, or export MINDIR") from None

    # like a checkpoint: a temporary file renamed into place (a full disk leaves no partial file)
    write_atomic(path, write)
    what = cfg.model + (f" backbone, maps {[f['index'] for f in cell.feature_info]}"
                        if cfg.export_head == "features" else "")
    shape = f"{cfg.export_batch_size or 'N'}x3x{cfg.image_size}x{cfg.image_size}" + (", any batch N" if dynamic else "")
    print(f"exported {what} ({shape}) to {path}", flush=True)
    return path
