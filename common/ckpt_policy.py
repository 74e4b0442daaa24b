"""Which periodic checkpoints a run keeps (``ckpt_save_policy``, MindCV's names; k is ``keep_checkpoint_max``).

* ``latest_k``: the newest k (``common.callbacks.CheckpointSaver`` prunes them itself);
* ``top_k``: the k with the best eval top-1 (ties: the newer). ``TopKCheckpoints`` ranks them in
  ``checkpoints_index.json`` beside them, so a ``--resume``d run continues the ranking and
  ``scripts/average_checkpoints.py --run_dir`` can average the best. A checkpoint with no eval result
  (a mid-epoch save, an epoch not evaluated) is only a resume point: it goes once a newer checkpoint
  is ranked. Only files in the index (this run's, resumes included) are ever removed; ``best.ckpt``
  and the ``ema-*`` files are not ranked (the latter stay ``latest_k``).

The index: ``{"metric": "top_1_accuracy", "checkpoints": [{"file", "epoch", "step_in_epoch",
"top1"}, ...]}`` in saving order, ``top1`` null when not evaluated; ``epoch`` counts completed epochs.
"""
import json
import os

from mindspore.train import Callback

from common.checkpoint import write_atomic

POLICIES = ("latest_k", "top_k")
INDEX_NAME = "checkpoints_index.json"
METRIC = "top_1_accuracy"


def read_index(directory):
    """The index's entries in ``directory`` (a checkpoint folder), oldest first; [] when there is none."""
    path = os.path.join(directory, INDEX_NAME)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return list(json.load(f)["checkpoints"])


def ranked(entries):
    """The evaluated entries, best first (a tie goes to the newer)."""
    scored = [e for e in entries if e.get("top1") is not None]
    return sorted(scored, key=lambda e: (e["top1"], _position(e)), reverse=True)


def _position(entry):
    return entry["epoch"], entry.get("step_in_epoch", 0)


class TopKCheckpoints(Callback):
    """Rank ``saver``'s checkpoints by ``eval_cb``'s top-1 and keep the best ``keep`` (0: all); placed after
    both in the callback list (they run first at an epoch's end). Rank 0 only, like the saver.

    ``resumed_at``: (completed epochs, step in epoch) of a ``--resume`` checkpoint, or None for a new run;
    a resumed run takes the index over, forgetting entries after that point (the resumed run saves
    them anew)."""

    def __init__(self, saver, eval_cb, keep, resumed_at=None):
        super().__init__()
        self.saver, self.eval_cb, self.keep = saver, eval_cb, int(keep)
        self.directory = saver.directory
        self.entries = [] if resumed_at is None else [
            e for e in read_index(self.directory)
            if _position(e) <= tuple(resumed_at) and os.path.isfile(self._file(e))]

    def _file(self, entry):
        return os.path.join(self.directory, os.path.basename(entry["file"]))

    def on_train_step_end(self, run_context):
        self._update(None)  # a mid-epoch save: indexed unranked

    def on_train_epoch_end(self, run_context):
        epoch = run_context.original_args().cur_epoch_num
        history = self.eval_cb.history if self.eval_cb is not None else []
        result = history[-1][1] if history and history[-1][0] == epoch else None
        self._update((epoch, result[METRIC]) if result else None)

    def _update(self, evaluated):
        new = self.saver.take_saved()
        if not new and evaluated is None:
            return
        for path, epoch, within in new:
            self.entries = [e for e in self.entries if self._file(e) != path]  # saved again: the new one
            self.entries.append({"file": os.path.basename(path), "epoch": epoch, "step_in_epoch": within,
                                 "top1": None})
        if evaluated is not None:
            for entry in self.entries:
                if (entry["epoch"], entry["step_in_epoch"]) == (evaluated[0], 0):
                    entry["top1"] = float(evaluated[1])
        self._prune()
        write_atomic(os.path.join(self.directory, INDEX_NAME), self._write)

    def _prune(self):
        if self.keep <= 0:  # keep_checkpoint_max 0 keeps every checkpoint
            return
        best = ranked(self.entries)
        newest = max((_position(e) for e in best), default=None)
        drop = best[self.keep:] + [e for e in self.entries
                                   if e.get("top1") is None and newest is not None and _position(e) < newest]
        for entry in drop:
            if os.path.isfile(self._file(entry)):
                os.remove(self._file(entry))
        self.entries = [e for e in self.entries if e not in drop]

    def _write(self, tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"metric": METRIC, "checkpoints": self.entries}, f, indent=1)
