"""Throughput benchmark: training and inference images/s, served (exported) inference, the input
pipeline alone, and optionally the PyTorch twins (``python benchmark.py --help``; what each figure
means: ``tools/benchmark/__init__.py``, results: docs/performance.md). Each worker process runs this file too."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402,F401  # the CPU fast path (oneDNN ISA cap) before MindSpore loads

from tools.benchmark.cli import create_parser, main, measure  # noqa: E402,F401
from tools.benchmark.pipeline import summarize_pipeline, write_synthetic_images  # noqa: E402,F401
from tools.benchmark.report import add_pipeline_ratios, add_ratios, markdown  # noqa: E402,F401
from tools.benchmark.timing import alternate, summarize, summarize_pairs, time_repeats  # noqa: E402,F401

if __name__ == "__main__":
    main()
