"""Throughput benchmark: training and inference images/s, served (exported) inference, the input
pipeline alone, and optionally the PyTorch twins (``python benchmark.py --help``; what each figure
means: ``tools/benchmark/__init__.py``, results: docs/performance.md). Each worker process runs this file too."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402,F401  # the CPU fast path (oneDNN ISA cap) before MindSpore loads

from tools.benchmark.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
