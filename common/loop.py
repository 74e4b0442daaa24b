"""A training loop for a step cell that ``mindspore.train.Model`` cannot drive.

Why it exists: THOR's ``ModelThor`` (what ``Model`` becomes for THOR) fails in MindSpore 2.10 in both
sink modes (``ModelThor._exec_preprocess() missing 2 required positional arguments``), so a THOR
trainer steps its cell here. The loop fills the ``cb_params`` fields the shared callbacks read
(``common.callbacks``, ``common.ema``), so resume counters, progress, EMA, checkpoints and eval work
the same as under ``Model.train``."""


def run_loop(step_cell, dataset, epochs, callbacks=(), initial_epoch=0, before_step=None):
    """Train ``step_cell(*batch)`` over ``dataset`` from ``initial_epoch`` to ``epochs`` (not sink mode).

    ``callbacks`` are ordinary ``mindspore.train.Callback`` objects. ``before_step(global_step)`` runs
    before each step with the run's step index (counted from 0, continuing after ``initial_epoch``)."""
    from mindspore.train import RunContext
    from common.config import Config

    steps = dataset.get_dataset_size()
    cb = Config(train_network=step_cell, network=step_cell.network, epoch_num=epochs, batch_num=steps,
                cur_epoch_num=initial_epoch, cur_step_num=initial_epoch * steps, net_outputs=None,
                mode="train", dataset_sink_mode=False, train_dataset=dataset, optimizer=step_cell.optimizer)
    context = RunContext(cb)
    _call(callbacks, "on_train_begin", context)
    iterator = dataset.create_tuple_iterator(num_epochs=epochs - initial_epoch)
    for epoch in range(initial_epoch, epochs):
        cb.cur_epoch_num = epoch + 1
        _call(callbacks, "on_train_epoch_begin", context)
        for inputs in iterator:
            if before_step is not None:
                before_step(cb.cur_step_num)
            cb.cur_step_num += 1
            _call(callbacks, "on_train_step_begin", context)
            cb.net_outputs = step_cell(*inputs)
            _call(callbacks, "on_train_step_end", context)
            if context.get_stop_requested():
                break
        _call(callbacks, "on_train_epoch_end", context)
        if context.get_stop_requested():
            break
    _call(callbacks, "on_train_end", context)
    return cb


def _call(callbacks, hook, context):
    for callback in callbacks:
        getattr(callback, hook)(context)
