"""Write scikit-learn's bundled handwritten digits as an ImageNet-style dataset (no download).

    python scripts/make_demo_data.py OUT [--size 32] [--val_fraction 0.2]

OUT/train/<class>/*.png, OUT/val/<class>/*.png, list files OUT/train_list.txt and
OUT/val_list.txt (lines ``train/3/0007.png 3``), OUT/labels.txt (one class name per line),
and a retrieval split for MultiGrain: OUT/query_list.txt (val images) against
OUT/gallery_list.txt (train images), same class = relevant.
"""
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.command import ArgumentParser, run_command  # noqa: E402


def make_demo_data(out, size=32, val_fraction=0.2, seed=0):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images, digits.target  # 8x8, values 0..16
    order = np.random.RandomState(seed).permutation(len(labels))
    n_val = int(round(len(labels) * val_fraction))
    splits = {"val": order[:n_val], "train": order[n_val:]}
    lists = {}
    for split, idx in splits.items():
        lines = []
        for i in sorted(idx):
            label = int(labels[i])
            rel = f"{split}/{label}/{i:04d}.png"
            path = os.path.join(out, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            gray = (images[i] * (255.0 / 16.0)).astype(np.uint8)
            img = Image.fromarray(gray, mode="L").resize((size, size), Image.BILINEAR).convert("RGB")
            img.save(path)
            lines.append(f"{rel} {label}")
        lists[split] = lines
        _write_lines(os.path.join(out, f"{split}_list.txt"), lines)
    _write_lines(os.path.join(out, "labels.txt"), [str(c) for c in range(10)])
    _write_lines(os.path.join(out, "query_list.txt"), lists["val"])
    _write_lines(os.path.join(out, "gallery_list.txt"), lists["train"])
    return {split: len(lines) for split, lines in lists.items()}


def _write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output folder")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    parser.add_argument("--val_fraction", type=float, default=0.2)
    args = parser.parse_args(argv)
    counts = make_demo_data(args.out, args.size, args.val_fraction)
    print(f"demo data in {args.out}: {counts['train']} train, {counts['val']} val images, 10 classes")


if __name__ == "__main__":
    sys.exit(run_command(main))
