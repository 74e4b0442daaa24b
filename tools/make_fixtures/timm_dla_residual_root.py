"""Write tests/fixtures/timm_dla_residual_root.npz: tiny DLAs with a residual root, run by timm.

Needs torch and timm (not the project's requirements: a separate venv, e.g.
``python -m venv /tmp/venv && /tmp/venv/bin/pip install torch==2.13.0 timm``), run from the
repository root: ``/tmp/venv/bin/python tools/make_fixtures/timm_dla_residual_root.py``. Written
with torch 2.13.0, timm 1.0.31.

Only dla46_c (no residual root) has a logits fixture from timm in ../shared; dla102/102x/169 differ
from it in the root's shortcut (``DlaRoot.shortcut``) and deeper trees. The same architectures with
their channels divided down stay small: for each config the file holds ``<name>/input`` (2x3x64x64),
``<name>/logits`` (timm's, eval mode), timm's state_dict as ``<name>/state`` (the float32 tensors
flattened and concatenated in order) with ``<name>/state_index`` (JSON ``[[key, shape], ...]``;
``num_batches_tracked`` left out), random weights with BatchNorm statistics and affine set to
non-trivial values, and the constructor arguments
(``levels``, ``channels``, ``cardinality``, ``base_width``, ``shortcut_root``, ``num_classes``).
tests/test_catch_dla_residual_root.py builds our DLA from those arguments, converts the state
dict with our converter and compares the logits.
"""
import importlib.abc
import importlib.machinery
import json
import os
import sys
import types

import numpy as np
import torch

OUT = os.path.join("tests", "fixtures", "timm_dla_residual_root.npz")
# dla102's trees (plain bottleneck) and dla169's (grouped, as the x variants), both with the residual
# root; channels small enough for a fixture of a few hundred kB
CHANNELS = (4, 8, 8, 16, 16, 32)
CONFIGS = {
    "dla102_tiny": dict(levels=(1, 1, 1, 3, 4, 1), channels=CHANNELS, cardinality=1, base_width=64),
    "dla169x_tiny": dict(levels=(1, 1, 2, 3, 5, 1), channels=CHANNELS, cardinality=4, base_width=16),
}
NUM_CLASSES = 5


class _Stub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Empty ``torchvision`` modules. timm imports torchvision at import time, and the torchvision
    wheels at hand are CUDA builds that fail to load beside the CPU torch; DLA uses no torchvision
    code, so any name timm asks for is a placeholder class."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] == "torchvision":
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Placeholders(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


class _Anything(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything(name, (), {})


class _Placeholders(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything(name, (torch.nn.Module,), {})


def _import_timm_dla():
    try:
        import torchvision  # noqa: F401  (a working install is used as it is)
    except Exception:  # pylint: disable=broad-except  # a CUDA build fails with RuntimeError, not ImportError
        for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        sys.meta_path.insert(0, _Stub())
    import timm
    from timm.models import dla
    return timm, dla


def _set_batchnorm(model, generator):
    """BatchNorm as after training: running statistics of the activations (measured on random
    batches, so the logits keep a sane scale through the residual roots), affine parameters away
    from 1/0."""
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the batches below
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, 64, 64, generator=generator))
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    model.eval()


def main():
    timm, dla = _import_timm_dla()
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    arrays = {}
    for name, cfg in CONFIGS.items():
        model = dla.DLA(levels=cfg["levels"], channels=cfg["channels"], num_classes=NUM_CLASSES,
                        cardinality=cfg["cardinality"], base_width=cfg["base_width"],
                        block=dla.DlaBottleneck, shortcut_root=True)
        _set_batchnorm(model, generator)
        x = torch.randn(2, 3, 64, 64, generator=generator)
        with torch.no_grad():
            logits = model(x)
        arrays[f"{name}/input"] = x.numpy()
        arrays[f"{name}/logits"] = logits.numpy()
        # the state dict as one vector and its [key, shape] list: one zip entry, not hundreds
        state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        arrays[f"{name}/state"] = np.concatenate([v.numpy().ravel() for v in state.values()]).astype(np.float32)
        arrays[f"{name}/state_index"] = np.asarray(json.dumps([[k, list(v.shape)] for k, v in state.items()]))
        for arg in ("levels", "channels", "cardinality", "base_width"):
            arrays[f"{name}/{arg}"] = np.asarray(cfg[arg])
        arrays[f"{name}/shortcut_root"] = np.asarray(True)
        arrays[f"{name}/num_classes"] = np.asarray(NUM_CLASSES)
        print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, "
              f"max |logit| {logits.abs().max():.3f}")
    arrays["versions"] = np.asarray(f"torch {torch.__version__}, timm {timm.__version__}")
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
