"""Throughput benchmark: training and inference images/s, served (exported) inference, the input
pipeline alone, and optionally the PyTorch twins, printed as a markdown table and written as JSON.

    python benchmark.py --models dla34,dla46_c,dla60,peleenet,multigrain_resnet50 --batch 16 --size 224 \\
        --device_target CPU --repeat 5 --warmup 2 --pipeline synthetic --export mindir,onnx --compare \\
        --json benchmark.json
    python benchmark.py --models dla34,peleenet --size 224 --export mindir,onnx --serve_batches 1,8,32 \
        --tasks infer --repeat 5 --warmup 2 --json serving.json      # the serving curve, folded and not
    python benchmark.py --models "" --batch 32 --pipeline synthetic --pipeline_images 512 --workers 1,2 \
        --repeat 5 --warmup 2 --pipeline_rounds 3      # the input pipeline alone (docs/performance.md)

Each model is measured in a fresh subprocess (so its peak RSS and the oneDNN/thread-pool state
are its own), each exported file in another one (a serving process loads only that file), the
input pipeline and each PyTorch twin in theirs.

* training: forward + backward + Momentum update, GRAPH_MODE, one ``nn.TrainOneStepCell`` call
  per step (the cell ``Model.train`` builds), softmax cross-entropy, random data;
* inference: the network in eval mode, GRAPH_MODE;
* served: the network exported at ``--batch`` (MINDIR run by ``nn.GraphCell(ms.load(...))``,
  ONNX by onnxruntime with ``--threads`` intra-op threads); ``--serve_batches 1,8,32`` adds the
  serving curve: each format exported at each of those batches, BatchNorm folded and not
  (``serving``), each file in its own process;
* pipeline: images/s out of ``common.data.create_dataset`` (the training split and transforms,
  ``--batch``, ``--size``) from an image folder (``DATA_DIR/train/<class>/*``) at each of
  ``--workers`` (default 1,2), CPU seconds per image, and beside it in the same run on the same
  files the ModelZoo-style pipeline (``ds.ImageFolderDataset`` + ``RandomCropDecodeResize`` +
  flip + normalize + HWC2CHW); also ours with ``deterministic: True`` (one worker by design) and
  with the mixup/cutmix batch map. ``--pipeline_rounds`` rounds, each variant once per round in
  its own process; ratios are the median (min-max) over the rounds. ``--pipeline synthetic``
  writes ``--pipeline_images`` ImageNet-sized JPEGs (500x375) to a temporary folder first;
* ``--compare``: if torch and timm import, the same measurements on the PyTorch twin (timm's DLA,
  a PeleeNet written here after the official ``peleenet.py``, timm's ResNet-50 with GeM pooling
  for MultiGrain), eager, ``torch.set_num_threads(threads)``, SGD with momentum.

``--paired N`` (with ``--compare``) also runs MindSpore and the twin in one process, their steps
alternating, and reports the median over N pairs of the twin's step time / ours: the machine's
drift then hits both sides of every pair alike.

Every figure is the median over ``--repeat`` timed repetitions of ``--steps`` steps after
``--warmup`` untimed ones (the first includes graph compilation), with min and max. Nothing here
needs torch: it is imported only in the twin's subprocess.

The package: ``timing``, ``workers`` (the subprocess protocol), ``twins`` (PyTorch), ``pipeline``, ``report``
and ``cli``; ``benchmark.py`` at the repository root is the entry point (and what each worker runs).
"""
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
