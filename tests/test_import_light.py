"""Building a model loads the model code, not the trainer: ``import common; create_model("dla34")``
imports no engine, data pipeline, callbacks, training loop or family task/THOR module.

MindSpore 2.10 itself imports ``mindspore.dataset`` (and ``mindspore.train``) inside ``import mindspore``,
so "no mindspore.dataset" can only mean: nothing beyond what ``import mindspore`` already loaded.
"""
import json
import subprocess
import sys

from conftest import ROOT

_PROBE = """
import json, sys
import mindspore
after_mindspore = set(sys.modules)
import common
from common import create_model
net = create_model("dla34")
new = sorted(set(sys.modules) - after_mindspore)
print(json.dumps({"dataset_with_mindspore": "mindspore.dataset" in after_mindspore, "new": new,
                  "architecture": net.pretrained_cfg["architecture"]}))
"""

# what building a model must not load: module names, and prefixes ending in "."
_TRAINER_MODULES = ("common.engine", "common.data", "common.data.", "common.callbacks", "common.loop",
                    "mindspore.dataset", "mindspore.dataset.")


def _is_trainer_module(name):
    exact = {m for m in _TRAINER_MODULES if not m.endswith(".")}
    prefixes = tuple(m for m in _TRAINER_MODULES if m.endswith("."))
    return name in exact or name.startswith(prefixes) or name.endswith((".src.task", ".src.thor"))


def test_create_model_loads_no_trainer():
    proc = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    probe = json.loads(proc.stdout.strip().splitlines()[-1])
    # the caveat above, checked: if MindSpore stops loading its dataset package, the test below gets stricter
    assert probe["dataset_with_mindspore"]
    assert probe["architecture"] == "dla34"
    new = probe["new"]
    assert "dla.src.dla" in new and "common.registry" in new  # the families were loaded: the check means something
    loaded = [name for name in new if _is_trainer_module(name)]
    assert not loaded, f"create_model('dla34') loaded trainer modules: {loaded}"
