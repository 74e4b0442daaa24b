"""MultiGrain's config keys on top of ``common.config`` (its family record's ``config_keys``).

Kept apart from ``task`` so that registering the family imports no trainer."""

# Keys of the ModelZoo MultiGrain card (and this repo's MultiGrain additions) on top of common.config:
# {key: (default, help[, valid range as in common.config.RANGES])}.
CONFIG_KEYS = {
    # model / loss
    "gem_p": (3.0, "GeM exponent used in training (the card: 3)", "(0, inf)"),
    "eval_gem_p": (0.0, "GeM exponent for eval/export (e.g. 4 at 500 px); 0 keeps the checkpoint's", "[0, inf)"),
    "mix_lambda": (0.5, "loss = mix_lambda * CE + (1 - mix_lambda) * margin loss (1: CE only)", "[0, 1]"),
    "margin": (0.2, "margin of the margin loss", "[0, inf)"),
    "beta_init": (1.2, "initial learnable boundary beta of the margin loss (no weight decay)", "[0, inf)"),
    "sampling_cutoff": (0.5, "distance-weighted sampling: distances are clamped below this", "[0, inf)"),
    "nonzero_loss_cutoff": (1.4, "distance-weighted sampling: negatives only closer than this", "(0, inf)"),
    "use_label_smooth": (True, "card: label smoothing on/off (off sets label_smooth_factor 0)"),
    "repeat_aug": (3, "repeated augmentation: copies of each image per batch (batch_size % it == 0)", "[1, inf)"),
    # card schedules (lr_decay_mode '' = use common lr_scheduler/lr keys)
    "lr_decay_mode": ("", "card schedule for Momentum: Linear (warm-up to lr_init, linear to 0 at lr_end_epoch)"),
    "lr_init": (0.05672, "card: peak lr (Linear) / initial lr (THOR)", "[0, inf)"),
    "lr_decay": (4.9687, "card THOR: lr = lr_init * (1 - epoch / lr_end_epoch) ** lr_decay", "[0, inf)"),
    "lr_end_epoch": (70, "card: epoch at which the lr schedule reaches 0", "[1, inf)"),
    "lr_halve_epoch": (39, "THOR: lr halved from this epoch and again one epoch later (ModelZoo train.py)",
                       "[0, inf)"),
    "pretrain_epoch_size": (0, "THOR: epochs a --pretrained checkpoint already trained (schedules start there)",
                            "[0, inf)"),
    # THOR
    "damping_init": (0.02345, "THOR damping at epoch 0", "(0, inf)"),
    "damping_decay": (0.5467, "THOR: damping = damping_init * damping_decay ** (epoch / 10)", "(0, 1]"),
    "frequency": (834, "THOR: steps between second-order (A/G inverse) updates", "[1, inf)"),
    "split_indices": ([26, 53], "THOR: all-reduce groups of the 54 A/G matrices"),
    # retrieval / export
    "retrieval": (False, "eval: also report mAP and recall@1/5 on query_list against gallery_list"),
    "query_list": ("query_list.txt", "retrieval queries (list file, relative to data_path)"),
    "gallery_list": ("gallery_list.txt", "retrieval gallery (list file, relative to data_path)"),
    "embeddings": ("", "predict: write the images' L2-normalised GeM embeddings to this .npy "
                       "(N x 2048 float32; file names, one a line, in the same-named .txt), batch by batch"),
    "gallery_embeddings": ("", "retrieval eval: the gallery's embeddings from predict --embeddings (.npy, read "
                               "memory-mapped) instead of embedding gallery_list's images again"),
}
