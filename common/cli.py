"""Entry points for the model folders: ``main = entry("train", "dla34_imagenet2012_config.yaml")``."""
import os

from common import engine

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config")
_TASKS = {"train": engine.train_main, "eval": engine.eval_main, "export": engine.export_main,
          "predict": engine.predict_main}


def entry(task, default_config, hooks=None):
    """A ``main(argv=None)`` running ``task`` with a config file from ``config/`` as the default."""
    def main(argv=None):
        return _TASKS[task](argv, os.path.join(CONFIG_DIR, default_config), hooks)
    main.__doc__ = f"{task} (default config: config/{default_config})"
    return main
