"""The PyTorch twins (timm's DLA, a PeleeNet after the official ``peleenet.py``, timm's ResNet-50 with
GeM for MultiGrain), their worker, and the paired run that alternates MindSpore and the twin in one process.
torch is imported only inside these functions, in the twin's own subprocess."""
import os
import subprocess
import sys

from tools.benchmark.timing import PAIR_PAUSE_S, alternate, peak_rss_mb, summarize, summarize_pairs, time_repeats
from tools.benchmark.workers import ms_setup, ms_train_step, random_batch


TIMM_TWINS = {"multigrain_resnet50": "resnet50", "multigrain": "resnet50"}


# --------------------------------------------------------------------------- PyTorch twins
def torch_peleenet(num_classes=1000):
    """PeleeNet as the official ``peleenet.py`` (Wang et al.) defines it, for --compare only."""
    from collections import OrderedDict
    import torch
    from torch import nn
    import torch.nn.functional as F

    class BasicConv2d(nn.Module):
        def __init__(self, in_channels, out_channels, **kwargs):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
            self.norm = nn.BatchNorm2d(out_channels)

        def forward(self, x):
            return F.relu(self.norm(self.conv(x)), inplace=True)

    class DenseLayer(nn.Module):
        def __init__(self, num_input_features, growth_rate, bottleneck_width):
            super().__init__()
            growth_rate = int(growth_rate / 2)
            inter_channel = int(growth_rate * bottleneck_width / 4) * 4
            if inter_channel > num_input_features / 2:
                inter_channel = int(num_input_features / 8) * 4
            self.branch1a = BasicConv2d(num_input_features, inter_channel, kernel_size=1)
            self.branch1b = BasicConv2d(inter_channel, growth_rate, kernel_size=3, padding=1)
            self.branch2a = BasicConv2d(num_input_features, inter_channel, kernel_size=1)
            self.branch2b = BasicConv2d(inter_channel, growth_rate, kernel_size=3, padding=1)
            self.branch2c = BasicConv2d(growth_rate, growth_rate, kernel_size=3, padding=1)

        def forward(self, x):
            branch1 = self.branch1b(self.branch1a(x))
            branch2 = self.branch2c(self.branch2b(self.branch2a(x)))
            return torch.cat([x, branch1, branch2], 1)

    class StemBlock(nn.Module):
        def __init__(self, num_input_channels, num_init_features):
            super().__init__()
            num_stem_features = int(num_init_features / 2)
            self.stem1 = BasicConv2d(num_input_channels, num_init_features, kernel_size=3, stride=2, padding=1)
            self.stem2a = BasicConv2d(num_init_features, num_stem_features, kernel_size=1)
            self.stem2b = BasicConv2d(num_stem_features, num_init_features, kernel_size=3, stride=2, padding=1)
            self.stem3 = BasicConv2d(2 * num_init_features, num_init_features, kernel_size=1)
            self.pool = nn.MaxPool2d(kernel_size=2, stride=2)

        def forward(self, x):
            out = self.stem1(x)
            branch2 = self.stem2b(self.stem2a(out))
            return self.stem3(torch.cat([self.pool(out), branch2], 1))

    class PeleeNet(nn.Module):
        def __init__(self, growth_rate=32, block_config=(3, 4, 8, 6), num_init_features=32,
                     bottleneck_width=(1, 2, 4, 4), drop_rate=0.05, num_classes=1000):
            super().__init__()
            self.features = nn.Sequential(OrderedDict([("stemblock", StemBlock(3, num_init_features))]))
            num_features = num_init_features
            for i, num_layers in enumerate(block_config):
                self.features.add_module(f"denseblock{i + 1}", nn.Sequential(OrderedDict(
                    (f"denselayer{j + 1}", DenseLayer(num_features + j * growth_rate, growth_rate, bottleneck_width[i]))
                    for j in range(num_layers))))
                num_features += num_layers * growth_rate
                self.features.add_module(f"transition{i + 1}", BasicConv2d(num_features, num_features, kernel_size=1))
                if i != len(block_config) - 1:
                    self.features.add_module(f"transition{i + 1}_pool", nn.AvgPool2d(kernel_size=2, stride=2))
            self.classifier = nn.Linear(num_features, num_classes)
            self.drop_rate = drop_rate

        def forward(self, x):
            features = self.features(x)
            out = F.avg_pool2d(features, kernel_size=(features.size(2), features.size(3))).flatten(1)
            if self.drop_rate > 0:
                out = F.dropout(out, p=self.drop_rate, training=self.training)
            return self.classifier(out)

    return PeleeNet(num_classes=num_classes)


def torch_gem_resnet50(timm, num_classes=1000, p=3.0, eps=1e-6):
    """timm's ResNet-50 with MultiGrain's GeM pooling (p fixed) in place of the average pool."""
    from torch import nn

    class GeM(nn.Module):
        def forward(self, x):
            return x.clamp(min=eps).pow(p).mean((2, 3)).pow(1.0 / p)

    model = timm.create_model("resnet50", num_classes=num_classes)
    model.global_pool = GeM()
    return model


def torch_twin(name):
    """(model, description) or raises ImportError when torch / timm are missing."""
    import timm
    if name == "peleenet":
        return torch_peleenet(), "official-PeleeNet twin (benchmark.py)"
    if TIMM_TWINS.get(name) == "resnet50":
        return torch_gem_resnet50(timm), "timm resnet50 + GeM"
    return timm.create_model(name, num_classes=1000), f"timm {name}"


def run_torch(spec):
    import torch
    threads = spec["threads"] or os.cpu_count()
    torch.set_num_threads(threads)
    images, labels = random_batch(spec)
    x, y = torch.from_numpy(images), torch.from_numpy(labels).long()
    model, twin = torch_twin(spec["model"])
    repeat, warmup, steps, batch = spec["repeat"], spec["warmup"], spec["steps"], spec["batch"]
    result = {"twin": twin, "torch_version": torch.__version__, "threads": threads}
    if "infer" in spec["tasks"]:
        result["infer"] = summarize(time_repeats(torch_infer_step(model, x), repeat, warmup, steps), batch)
    if "train" in spec["tasks"]:
        result["train"] = summarize(time_repeats(torch_train_step(model, x, y), repeat, warmup, steps), batch)
    result["rss_mb"] = peak_rss_mb()
    return result


def torch_infer_step(model, x):
    import torch
    model.eval()

    def infer_step():
        with torch.inference_mode():
            return model(x)
    return infer_step


def torch_train_step(model, x, y):
    """The twin's step: zero_grad, forward, cross-entropy, backward, SGD with momentum 0.9."""
    import torch
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()

    def train_step():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        return loss
    return train_step


def run_paired(spec):
    """MindSpore and the twin in one process, their steps alternating (``alternate``): inference,
    then training, as in ``run_model``."""
    ms = ms_setup(spec)
    import torch
    from common import create_model
    torch.set_num_threads(spec["threads"] or os.cpu_count())
    images, labels = random_batch(spec)
    net = create_model(spec["model"], num_classes=1000)
    model, twin = torch_twin(spec["model"])
    x, y = ms.Tensor(images), ms.Tensor(labels)
    tx, ty = torch.from_numpy(images), torch.from_numpy(labels).long()
    warmup = max(spec["warmup"], 1)  # the first MindSpore step compiles the graph
    result = {"twin": twin, "pairs": spec["paired"], "pause_s": PAIR_PAUSE_S}
    if "infer" in spec["tasks"]:
        net.set_train(False)
        ours, theirs = alternate(lambda: net(x).asnumpy(), torch_infer_step(model, tx), spec["paired"], warmup)
        result["infer"] = summarize_pairs(ours, theirs, spec["batch"])
    if "train" in spec["tasks"]:
        ours, theirs = alternate(ms_train_step(net, x, y), torch_train_step(model, tx, ty), spec["paired"], warmup)
        result["train"] = summarize_pairs(ours, theirs, spec["batch"])
    result["rss_mb"] = peak_rss_mb()
    return result


def torch_available():
    """'' if torch and timm import (in a subprocess, so this process never loads torch), else why not."""
    probe = subprocess.run([sys.executable, "-c", "import torch, timm; print(torch.__version__, timm.__version__)"],
                           capture_output=True, text=True, check=False)
    if probe.returncode == 0:
        return "", probe.stdout.split()
    return (probe.stderr.strip().splitlines() or ["import failed"])[-1], []
