"""MultiGrain's hooks into the shared engine: the card's config keys turned into the shared ones, the mix
loss, the repeated-augmentation sampler, the THOR trainer and its refusals, retrieval evaluation, the
exported head and predict with embeddings."""
import os

from common.config import Config
from common.errors import ConfigError
from common.family import TaskHooks
from common.loss import register_loss
from multigrain.src.lr_generator import card_linear_keys
from multigrain.src.thor import is_thor, thor_device_error

EMBEDDING_DIM = 2048  # ResNet-50's layer4 channels (MultiGrain.num_features): the width of an embedding export
MIX_LOSS = "multigrain_mix"


def check_config(cfg):
    """The refusals, and the card keys as the shared keys they stand for ({key: value} the spine applies)."""
    if is_thor(cfg):  # first: a THOR config stops here, before any data check
        _check_thor(cfg)
    if cfg.mix_lambda < 1.0 and cfg.repeat_aug < 2:
        raise ConfigError("config error: the margin loss (mix_lambda < 1) needs repeat_aug >= 2 for positive pairs")
    if cfg.retrieval and cfg.ckpt_file:
        from common.predict import is_exported
        if is_exported(cfg.ckpt_file, cfg.backend):
            raise ConfigError("config error: --retrieval needs a checkpoint (.ckpt); an exported file is "
                              "evaluated for top-1/top-5 only")
    overrides = {}
    if not cfg.use_label_smooth:
        overrides["label_smooth_factor"] = 0.0
    if cfg.lr_decay_mode and not is_thor(cfg):
        overrides.update(card_linear_keys(cfg))  # the card's Linear mode as common.lr's linear schedule
    return overrides


def resume_point(cfg):
    """A THOR run from --pretrained weights that already trained ``pretrain_epoch_size`` epochs continues
    after them (as ModelZoo: epochs start+1..epoch_size, counted and named as the whole run's)."""
    if is_thor(cfg) and cfg.pretrain_epoch_size:
        from common.training_state import ResumePoint
        return ResumePoint(epoch=cfg.pretrain_epoch_size)
    return None


def _check_thor(cfg):
    """What the THOR trainer (multigrain.src.thor.thor_trainer) cannot do, one line each."""
    message = thor_device_error(cfg.device_target)
    if message:
        raise ConfigError(message)
    if int(cfg.gradient_accumulation_steps) > 1:
        raise ConfigError("config error: THOR does not accumulate gradients (its statistics are per step); "
                          "use --gradient_accumulation_steps 1")
    if cfg.clip_grad != "none":
        raise ConfigError(f"config error: THOR does not clip gradients (clip_grad {cfg.clip_grad}); use --clip_grad none")
    if cfg.dataset_sink_mode:
        raise ConfigError("config error: THOR trains in a Python loop (ModelThor fails in MindSpore 2.10); "
                          "use --dataset_sink_mode False")
    if cfg.loss_scale_mode != "fixed":
        raise ConfigError(f"config error: THOR uses a fixed loss scale, not loss_scale_mode '{cfg.loss_scale_mode}'; "
                          f"use --loss_scale_mode fixed")
    if cfg.pretrain_epoch_size and cfg.resume:
        raise ConfigError("config error: --resume continues from the checkpoint's own epoch; "
                          "drop pretrain_epoch_size (it is for starting from --pretrained weights)")
    if cfg.pretrain_epoch_size >= cfg.epoch_size:
        raise ConfigError(f"config error: pretrain_epoch_size ({cfg.pretrain_epoch_size}) leaves no epoch to train "
                          f"(epoch_size {cfg.epoch_size})")


def create_trainer(cfg, setup):
    """THOR configs train with THOR's optimizer and step, the others with the shared trainer."""
    from common.trainer import model_trainer
    from multigrain.src.thor import thor_trainer
    return (thor_trainer if is_thor(cfg) else model_trainer)(cfg, setup)


@register_loss(MIX_LOSS)
def create_mix_loss(cfg, net):
    from multigrain.src.mix_loss import MixLoss
    return MixLoss(cfg.num_classes, mix_lambda=cfg.mix_lambda, smooth_factor=cfg.label_smooth_factor,
                   repeat=max(cfg.repeat_aug, 2), margin=cfg.margin, beta_init=cfg.beta_init,
                   cutoff=cfg.sampling_cutoff, nonzero_loss_cutoff=cfg.nonzero_loss_cutoff, seed=cfg.seed)


def create_train_network(cfg, net, loss):
    from multigrain.src.mix_loss import MultiGrainWithLoss
    net.set_gem_p(cfg.gem_p)
    return MultiGrainWithLoss(net, loss)


def create_train_sampler(cfg, rank, group_size, num_samples):
    from multigrain.src.sampler import RepeatedAugSampler
    try:
        return RepeatedAugSampler(num_samples, repeat=cfg.repeat_aug, num_shards=group_size, shard_id=rank,
                                  seed=cfg.seed, batch_size=cfg.batch_size)
    except ValueError as err:
        raise ConfigError(f"config error: {err}") from None


def _apply_eval_gem_p(cfg, net):
    if cfg.eval_gem_p > 0 and net.get_gem_p() != cfg.eval_gem_p:
        net.set_gem_p(cfg.eval_gem_p)
        print(f"GeM p for evaluation: {net.get_gem_p():g}", flush=True)


def export_network(cfg, net):
    from multigrain.src.multigrain import EmbeddingHead
    _apply_eval_gem_p(cfg, net)
    return EmbeddingHead(net) if cfg.export_head == "embedding" else net


def extract(net, dataset):
    """(logits, normalised embeddings, labels) as numpy arrays, one forward pass per batch."""
    import numpy as np
    from multigrain.src.multigrain import MultiGrainOutputs
    cell = MultiGrainOutputs(net)
    cell.set_train(False)
    logits, embeddings, labels = [], [], []
    for image, label in dataset.create_tuple_iterator():
        out, emb = cell(image)
        logits.append(out.asnumpy())
        embeddings.append(emb.asnumpy())
        labels.append(label.asnumpy())
    return np.concatenate(logits), np.concatenate(embeddings), np.concatenate(labels)


def retrieval_eval(cfg, net):
    """mAP and recall@1/5 of ``query_list`` against ``gallery_list`` (same label = relevant), with the
    GeM p that ``prepare_eval_net`` set for this evaluation; the gallery from ``gallery_embeddings`` when
    given (predict's --embeddings of the gallery list's images, made with the same GeM p)."""
    from common.data import create_dataset
    from multigrain.src.retrieval import retrieval_metrics
    from common.data import dataset_samples
    from multigrain.src.embeddings import load_gallery
    splits = {}
    for name in ("query", "gallery"):
        split_cfg = Config(cfg, cls_label_path_val=cfg[f"{name}_list"], labels_are_classes=False)
        if name == "gallery" and cfg.gallery_embeddings:  # embedded by predict, maybe larger than memory
            splits[name] = load_gallery(cfg.gallery_embeddings, dataset_samples(split_cfg, "val"))
            continue
        _, embeddings, labels = extract(net, create_dataset(split_cfg, "val"))
        splits[name] = (embeddings, labels)
    result = retrieval_metrics(*splits["query"], *splits["gallery"], ks=(1, 5))
    shown = {k: round(result[k], 4) for k in ("mAP", "recall@1", "recall@5")}
    print(f"retrieval: {shown} queries= {len(splits['query'][1])} gallery= {len(splits['gallery'][1])} "
          f"gem_p= {net.get_gem_p():g}", flush=True)
    return result


def after_eval(cfg, net, result):
    return retrieval_eval(cfg, net) if cfg.retrieval else None


def predict(cfg, hooks):
    """predict.py: top-k classes like every family; ``--embeddings OUT.npy`` also writes the images'
    normalised GeM embeddings (the retrieval eval's, same GeM p) with their names in OUT.txt, batch by
    batch (``multigrain.src.embeddings``). From a checkpoint (one forward pass gives both) or an export:
    a classifier export gives classes, an ``--export_head embedding`` export gives embeddings (told apart
    by the output width)."""
    from common.data import class_names
    from common.runtime import build_net, init_device, single_device
    from common.predict import Predictor, check_some_read, in_order, is_exported, predicted, topk_results
    from common.predict_inputs import image_paths
    from common.predict_results import ResultSink
    from multigrain.src.embeddings import EmbeddingWriter, names_path
    from multigrain.src.multigrain import MultiGrainOutputs

    paths = image_paths(cfg.predict_path, cfg.data_path)
    out_path = _embeddings_path(cfg.embeddings) if cfg.embeddings else ""
    sink = ResultSink(cfg.results_file, len(paths), cfg.topk)
    init_device(single_device(cfg))

    def outputs_cell(net):
        _apply_eval_gem_p(cfg, net)
        return MultiGrainOutputs(net)

    predictor = Predictor(cfg, build_net, outputs_cell)
    exported = is_exported(cfg.ckpt_file, cfg.backend)
    writer = EmbeddingWriter(out_path, len(paths)) if out_path else None
    names, results = class_names(cfg), []
    for positions, out, skipped in predicted(cfg, predictor, paths):
        logits, embeddings = _outputs(cfg, out, exported) if positions else (None, None)
        batch_paths = [paths[i] for i in positions]
        rows = dict(zip(positions, topk_results(logits, batch_paths, names, cfg.topk))) if logits is not None else {}
        rows = in_order(rows, skipped, paths)
        sink.add(rows)
        results += [] if cfg.results_file else rows
        if writer and embeddings is not None:
            writer.add(embeddings, batch_paths)
    sink.close()
    check_some_read(sink, paths)
    if writer:
        rows, dim = writer.close()
        print(f"embeddings: {rows}x{dim} to {out_path}, names to {names_path(out_path)}", flush=True)
    return {"results": results, "embeddings": out_path}


def _outputs(cfg, out, exported):
    """(logits or None, embeddings or None) of one batch's outputs."""
    from common.errors import UserError
    if not exported:
        return out
    logits = embeddings = None
    width = out.shape[-1]
    if width == cfg.num_classes and cfg.export_head != "embedding":
        logits = out
    elif width == EMBEDDING_DIM:
        embeddings = out
    else:
        raise UserError(f"{cfg.ckpt_file} outputs {width} values per image: neither {cfg.num_classes} class "
                        f"scores nor a {EMBEDDING_DIM}-d embedding")
    if cfg.embeddings and embeddings is None:
        raise UserError(f"{cfg.ckpt_file} is a classifier export: for embeddings use the checkpoint or an "
                        f"export made with --export_head embedding")
    if logits is None and not cfg.embeddings:
        raise UserError(f"{cfg.ckpt_file} is an embedding export: pass --embeddings OUT.npy")
    return logits, embeddings


def _embeddings_path(path):
    path = path if path.endswith(".npy") else path + ".npy"  # as numpy.save names it
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"config error: embeddings: folder {folder} does not exist")
    return path


HOOKS = TaskHooks(loss=MIX_LOSS, check_config=check_config, resume_point=resume_point,
                  create_train_network=create_train_network, create_train_sampler=create_train_sampler,
                  export_network=export_network, prepare_eval_net=_apply_eval_gem_p, after_eval=after_eval,
                  create_trainer=create_trainer, predict=predict)
