"""Convert foreign weights to a MindSpore checkpoint for one of our models.

    python scripts/convert_weights.py SRC OUT.ckpt --arch NAME [--num_classes N]

SRC: timm ``.safetensors`` / ``.pth``, an official PeleeNet ``.pth.tar``, a PaddleClas
``.pdparams`` (told apart by content, so a wrong suffix does not matter). Every parameter of
NAME must be filled and every source key used (or known to be ignorable); otherwise nothing
is written and the keys that did not fit are listed. OUT's folder is created if missing. Errors are one
line ``error: …`` on stderr, exit status 2 (common.command).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402,F401  (CPU fast path before MindSpore runs)
from common.command import ArgumentParser, run_command  # noqa: E402


def main(argv=None):
    return run_command(convert, argv, user_errors=(ValueError,))


def convert(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="weights file (.safetensors, .pth, .pth.tar, .pt, .pdparams)")
    parser.add_argument("out", help="MindSpore checkpoint to write")
    parser.add_argument("--arch", required=True, help="our model name, e.g. dla34, peleenet")
    parser.add_argument("--num_classes", type=int, default=0, help="default: the source head's class count")
    args = parser.parse_args(argv)

    import mindspore as ms
    from common.checkpoint import classifier_param_names, match_weights, save_checkpoint_atomic
    from common.convert import to_net_names
    from common.errors import OutputError, describe_os_error
    from common.registry import create_model, model_entrypoint
    from common.weights import read_weights

    # load_weights' steps, the fitted tensors saved instead of loaded (no value the file lacks is added);
    # a WeightsError / unknown --arch (ValueError) is one line (run_command)
    model_entrypoint(args.arch)
    progress = _Progress()
    found = read_weights(args.src)
    progress(f"read {len(found.tensors)} tensors of {args.src}")
    net = create_model(args.arch, num_classes=args.num_classes or _source_classes(found.tensors, args.arch))
    weights = match_weights(net, to_net_names(found.tensors, net, found.fmt), found.path, args.arch).weights
    progress(f"matched {len(weights)} tensors to {args.arch}; writing {args.out}")
    folder = os.path.dirname(os.path.abspath(args.out))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the folder {folder} for {args.out}: {describe_os_error(err)}") from None
    params = [{"name": name, "data": ms.Tensor(value)} for name, value in weights.items()]
    save_checkpoint_atomic(params, args.out)
    head = classifier_param_names(net)
    print(f"converted {found.fmt} {args.src} -> {args.out}: {args.arch}, {len(weights)} tensors, "
          f"{net.num_classes if hasattr(net, 'num_classes') else '?'} classes (head {', '.join(head)})")
    return 0


class _Progress:
    """Prints how far the conversion is once it has taken more than ``after_s`` seconds (a large file):
    on stdout, so an error stays the one line on stderr."""
    after_s = 3.0

    def __init__(self):
        self.start = time.time()

    def __call__(self, done):
        elapsed = time.time() - self.start
        if elapsed > self.after_s:
            print(f"convert: {done} ({elapsed:.0f} s)", flush=True)


def _source_classes(state, arch):
    """The class count of the source head (the bias of the last 1-D entry named like a classifier)."""
    for key in reversed(list(state)):
        leaf = key.rsplit(".", 1)
        if leaf[-1] == "bias" and leaf[0].split(".")[-1] in ("fc", "classifier", "head", "out"):
            return int(state[key].shape[0])
    raise ValueError(f"cannot tell the class count of the classifier in the source for {arch}; pass --num_classes")


if __name__ == "__main__":
    sys.exit(main())
