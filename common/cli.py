"""The entry files of every model folder: ``main = main_for(__file__)``.

The task is the file's name (train/eval/export/predict) and the default config the record of the
family whose folder holds it; the hooks come from the config's model (``engine.run_main``), so any
family's entry file runs any family's config correctly."""
import os

from common import engine

_TASKS = {"train": engine.train_main, "eval": engine.eval_main, "export": engine.export_main,
          "predict": engine.predict_main}


def main_for(path):
    """A ``main(argv=None)`` for the entry file at ``path`` (``<root>/<family>/<task>.py``); the default
    config is ``<root>/config/<the family record's default_config>``, looked up when main runs."""
    folder, file_name = os.path.split(os.path.abspath(path))
    task, family_name = os.path.splitext(file_name)[0], os.path.basename(folder)
    if task not in _TASKS:
        raise ValueError(f"{path}: an entry file is named after its task: {', '.join(_TASKS)}")

    def main(argv=None):
        from common.family import default_config_path
        return _TASKS[task](argv, default_config_path(folder), None)
    main.__doc__ = f"{task} (default config: the {family_name} family's)"
    return main
