"""The metrics every evaluation reports (training's, a checkpoint's, an export's): top-1 and top-5."""
METRIC_NAMES = ("top_1_accuracy", "top_5_accuracy")


def metrics():
    from mindspore.train import Top1CategoricalAccuracy, Top5CategoricalAccuracy
    return {"top_1_accuracy": Top1CategoricalAccuracy(), "top_5_accuracy": Top5CategoricalAccuracy()}
