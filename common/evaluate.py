"""The eval task: a checkpoint's (or an exported file's) top-1/top-5 on the validation split, then the
family's own metrics (``after_eval``: MultiGrain's retrieval)."""
import os

from common.errors import UserError
from common.metrics import METRIC_NAMES, metrics
from common.runtime import init_device, single_device


def evaluate(cfg, hooks):
    """The result dict (printed as ModelZoo's ``result: {...} ckpt= PATH``), also as JSON with ``results_file``
    (Paddle's ``--save_json_path``)."""
    from common.predict_results import json_path, write_json
    path = json_path(cfg.results_file) if cfg.results_file else ""  # a bad name stops before the eval
    result, rank = _evaluate(cfg, hooks)
    if path and rank == 0:  # every rank of a distributed eval holds the summed result: one writes it
        write_json(path, result)
        print(f"result written to {path}", flush=True)
    return result


def _evaluate(cfg, hooks):
    from mindspore.train import Model
    from common.callbacks import EvalProgress
    from common.data import create_dataset
    from common.loss import create_loss
    from common.predict import evaluate_exported, is_exported
    from common.runtime import build_net

    if not cfg.ckpt_file:
        raise UserError("no checkpoint to evaluate: pass --ckpt_file PATH")
    if is_exported(cfg.ckpt_file, cfg.backend):  # .mindir / .onnx: run the file, not the registry's net
        return evaluate_exported(cfg, hooks), 0
    # run_distribute (under msrun / a launcher): each rank evaluates its shard, the counts are summed
    rank, group_size = init_device(cfg if cfg.run_distribute else single_device(cfg))
    net = build_net(cfg, cfg.ckpt_file)
    net.set_train(False)
    if hooks.prepare_eval_net:
        hooks.prepare_eval_net(cfg, net)
    model = Model(net, loss_fn=create_loss(cfg, net, hooks.loss), metrics=metrics())
    progress = [EvalProgress(cfg.log_interval, rank)]  # rank 0's shard when distributed
    if group_size > 1:
        from common.distributed_eval import sharded_val_dataset, sum_over_ranks
        dataset, local, total = sharded_val_dataset(cfg, rank, group_size)
        raw = sum_over_ranks(model.eval(dataset, callbacks=progress, dataset_sink_mode=False), local)
        print(f"rank {rank} of {group_size} evaluated {local} of {total} images", flush=True)
    else:
        raw = model.eval(create_dataset(cfg, "val"), callbacks=progress, dataset_sink_mode=False)
    result = {k: float(raw[k]) for k in METRIC_NAMES}
    print(f"result: {result} ckpt= {os.path.abspath(cfg.ckpt_file)}", flush=True)
    if hooks.after_eval and rank == 0:  # e.g. MultiGrain's retrieval: whole splits, once
        result.update(hooks.after_eval(cfg, net, result) or {})
    return result, rank
