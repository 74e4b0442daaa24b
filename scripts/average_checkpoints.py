"""Average the weights of several checkpoints of one model into one .ckpt (timm's avg_checkpoints.py).

    python scripts/average_checkpoints.py A.ckpt B.ckpt [...] --out avg.ckpt
    python scripts/average_checkpoints.py --run_dir OUTPUT_DIR --top_k 3 --out avg.ckpt

The second form takes the N best checkpoints of a run trained with ``ckpt_save_policy top_k`` (ranked by
eval top-1 in OUTPUT_DIR/ckpt/checkpoints_index.json). Each tensor is the arithmetic mean of the
checkpoints' (computed in float64, stored in the checkpoint's dtype); the optimizer state and counters are
left out, so the file is a plain weights file for eval.py, export.py and --pretrained. Checkpoints of
different models or shapes are refused in one line; errors are one line ``error: …``, exit status 2.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402,F401  (CPU fast path before MindSpore runs)
from common.command import ArgumentParser, run_command  # noqa: E402
from common.errors import ConfigError, WeightsError  # noqa: E402


def main(argv=None):
    return run_command(average, argv)


def average(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpts", nargs="*", help="checkpoints to average (.ckpt)")
    parser.add_argument("--run_dir", default="", help="a run's output_dir (or its ckpt folder) with "
                                                      "checkpoints_index.json (ckpt_save_policy top_k)")
    parser.add_argument("--top_k", type=int, default=0, help="with --run_dir: the N best by eval top-1 (0: all ranked)")
    parser.add_argument("--out", required=True, help="averaged checkpoint to write")
    args = parser.parse_args(argv)
    if bool(args.ckpts) == bool(args.run_dir):
        raise ConfigError("give checkpoints to average or --run_dir DIR, not both nor neither "
                          "(see average_checkpoints.py --help)")
    paths = args.ckpts or top_checkpoints(args.run_dir, args.top_k)

    from common.checkpoint import save_checkpoint_atomic
    from common.outputs import make_output_dir
    names, mean = average_weights(paths)
    make_output_dir(os.path.dirname(os.path.abspath(args.out)))
    import mindspore as ms
    save_checkpoint_atomic([{"name": name, "data": ms.Tensor(mean[name])} for name in names], args.out)
    print(f"averaged {len(paths)} checkpoints -> {args.out}: {len(names)} tensors (optimizer state left out): "
          + ", ".join(os.path.basename(p) for p in paths))
    return 0


def top_checkpoints(run_dir, top_k):
    """The ``top_k`` best checkpoints (0: all) the run's index ranks, best first."""
    from common.ckpt_policy import INDEX_NAME, ranked, read_index
    from common.outputs import checkpoint_dirs
    folders = [run_dir, *checkpoint_dirs(run_dir)]
    folder = next((d for d in folders if os.path.isfile(os.path.join(d, INDEX_NAME))), None)
    if folder is None:
        raise ConfigError(f"no {INDEX_NAME} in {run_dir} or its ckpt folder: train with --ckpt_save_policy top_k, "
                          f"or name the checkpoints to average")
    best = ranked(read_index(folder))
    if top_k > len(best) or not best:
        raise ConfigError(f"{os.path.join(folder, INDEX_NAME)} ranks {len(best)} checkpoint(s), "
                          f"fewer than --top_k {top_k}" if best else f"{folder}: no evaluated checkpoint to average")
    return [os.path.join(folder, e["file"]) for e in best[:top_k or None]]


def average_weights(paths):
    """(tensor names, {name: mean array}) of the network tensors the checkpoints at ``paths`` all hold."""
    import numpy as np
    from common.checkpoint import is_training_state
    from common.weights import load_checkpoint_file

    first, names, total, dtypes = paths[0], None, {}, {}
    for path in paths:
        state = {k: v.asnumpy() for k, v in load_checkpoint_file(path).items() if not is_training_state(k)}
        if names is None:
            names, dtypes = list(state), {k: v.dtype for k, v in state.items()}
            total = {k: np.zeros(v.shape, np.float64) for k, v in state.items()}
        _same_model(first, names, total, path, state)
        for name, value in state.items():
            total[name] += value
    return names, {k: (v / len(paths)).astype(dtypes[k]) for k, v in total.items()}


def _same_model(first, names, total, path, state):
    only_first = [k for k in names if k not in state]
    only_here = [k for k in state if k not in total]
    if only_first or only_here:
        raise WeightsError(f"{path} and {first} are checkpoints of different models: "
                           f"{len(only_here)} tensor(s) only in the first ({', '.join(only_here[:3])}), "
                           f"{len(only_first)} only in the second ({', '.join(only_first[:3])}); nothing written")
    shapes = [f"{k} {tuple(v.shape)} != {tuple(total[k].shape)}" for k, v in state.items()
              if v.shape != total[k].shape]
    if shapes:
        raise WeightsError(f"{path} and {first} differ in shape: {', '.join(shapes[:3])}; nothing written")


if __name__ == "__main__":
    sys.exit(main())
