"""Count a model's multiply-accumulates (MACs) per image: every nn.Conv2d and nn.Dense, one forward pass.

    python scripts/count_flops.py [MODEL ...] [--size 224] [--num_classes 1000]

Prints ``model  GMACs  params``; no model name: every registered model. MACs are what timm's
benchmark tables call GMACs and PaddleClas's model tables call FLOPs; floating-point operations are
about twice as many. Convolutions and fully-connected layers only (BatchNorm, activations and pooling
add about 1 %), as those tables count; forward hooks record each layer's output shape in PyNative mode.
MindSpore 2.10's own graph counter (``mindspore.flops_collection`` on a compiled phase) agrees on
dla34 (6.12 GFLOPs = 2 x 3.06 GMACs) but not on grouped convolutions (dla46x_c: 2.07 GFLOPs =
2 x 1.04 GMACs, where timm has 0.54 GMACs and this script 0.53), so it is not used.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def count_macs(net, size=224):
    """MACs of one ``3 x size x size`` image through ``net``: sum over nn.Conv2d (output elements x
    in_channels / groups x kernel area) and nn.Dense (in x out)."""
    import numpy as np
    import mindspore as ms
    from mindspore import nn

    total = []

    def conv_hook(cell, _inputs, output):
        kh, kw = cell.kernel_size
        total.append(output[0].size * (cell.in_channels // cell.group) * kh * kw)

    def dense_hook(cell, _inputs, output):
        total.append(output[0].size * cell.in_channels)

    handles = []
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.Conv2d):
            handles.append(cell.register_forward_hook(conv_hook))
        elif isinstance(cell, nn.Dense):
            handles.append(cell.register_forward_hook(dense_hook))
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)  # hooks run in PyNative only
    try:
        net.set_train(False)
        net(ms.Tensor(np.zeros((1, 3, size, size), np.float32)))
    finally:
        ms.set_context(mode=previous)
        for handle in handles:
            handle.remove()
    return int(sum(total))


def count_params(net):
    return int(sum(p.size for p in net.get_parameters() if "moving_" not in p.name))


def main(argv=None):
    import common  # noqa: F401  (CPU fast path; registers the families)
    from common.registry import create_model, list_models
    from common.command import ArgumentParser
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="registered names (default: all)")
    parser.add_argument("--size", type=int, default=224, help="input side in pixels (default 224)")
    parser.add_argument("--num_classes", type=int, default=1000)
    args = parser.parse_args(argv)
    rows = []
    for name in args.models or list_models():
        net = create_model(name, num_classes=args.num_classes, image_size=args.size)
        rows.append((name, count_macs(net, args.size), count_params(net)))
        print(f"{name:<24} {rows[-1][1] / 1e9:7.3f} GMACs  {rows[-1][2]:>12,} params  ({args.size} px)", flush=True)
    return rows


def cli(argv=None):
    """``main`` as a command: its exit status; an unknown model name or size is one line (common.command)."""
    from common.command import run_command
    return run_command(lambda args: main(args) and 0, argv, user_errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(cli())
