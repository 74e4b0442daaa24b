"""Damaged PNG files: a chunk whose CRC does not match its bytes, and a file cut inside its IDAT
data. Through the data source: ``read_encoded`` refuses each naming the path, and a real training
pipeline epoch reports each once by path, leaves it out, and delivers every good image once.

The PNGs come from PIL's encoder; the damage is done by hand on the chunk layout of the PNG
specification (length, type, data, CRC-32 of type + data)."""
import io
import logging
import struct

import numpy as np
import pytest
from PIL import Image

from common.config import parse_args
from common.data import create_dataset
from common.data.image_file import read_encoded
from common.errors import DatasetError

GOOD = 6


def png_bytes(seed):
    """A noisy RGB PNG (noise keeps IDAT long enough to cut inside it)."""
    image = np.random.default_rng(seed).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(image).save(out, "PNG")
    return out.getvalue()


def idat(data):
    """(offset of the first IDAT chunk, its data length)."""
    pos = 8
    while True:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IDAT":
            return pos, length
        pos += 12 + length


def bad_crc(data):
    """One bit of the IDAT data flipped: the chunk's stored CRC no longer matches."""
    pos, length = idat(data)
    damaged = bytearray(data)
    damaged[pos + 8 + length // 2] ^= 0x01
    return bytes(damaged)


def truncated_idat(data):
    """The file cut in the middle of its IDAT data (a copy or download that stopped)."""
    pos, length = idat(data)
    return data[:pos + 8 + length // 2]


BAD = {"bad_crc.png": bad_crc, "truncated_idat.png": truncated_idat}


def test_pil_refuses_the_damaged_files_too():
    """The damage is real for an independent decoder, not only for our checks."""
    for damage in BAD.values():
        with pytest.raises((OSError, SyntaxError, ValueError)):
            Image.open(io.BytesIO(damage(png_bytes(0)))).load()


@pytest.mark.parametrize("name, why", [("bad_crc.png", "CRC"), ("truncated_idat.png", "truncated")])
def test_read_encoded_refuses_naming_the_path(tmp_path, name, why):
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes(1))
    data, stamp = read_encoded(str(good))
    assert data.tobytes() == good.read_bytes() and stamp is not None  # the good file's own bytes, checked
    bad = tmp_path / name
    bad.write_bytes(BAD[name](png_bytes(1)))
    with pytest.raises(DatasetError, match=f"unreadable image {bad}: .*{why}"):
        read_encoded(str(bad))


@pytest.fixture()
def png_tree(tmp_path):
    """train/c<i>/img.png, one good image per class; the damaged ones in classes 1 and 4."""
    for i in range(GOOD):
        folder = tmp_path / "train" / f"c{i}"
        folder.mkdir(parents=True)
        (folder / "img.png").write_bytes(png_bytes(10 + i))
    bad = []
    for (name, damage), i in zip(BAD.items(), (1, 4)):
        path = tmp_path / "train" / f"c{i}" / name
        path.write_bytes(damage(png_bytes(100 + i)))
        bad.append(path)
    return tmp_path, bad


@pytest.mark.parametrize("deterministic", [False, True])
def test_a_pipeline_epoch_reports_each_once_and_delivers_the_others(png_tree, deterministic, caplog):
    root, bad = png_tree
    cfg = parse_args(["--data_path", str(root), "--image_size", "32", "--batch_size", "1", "--num_classes",
                      str(GOOD), "--num_parallel_workers", "2", "--deterministic", str(deterministic)])
    dataset = create_dataset(cfg, "train")
    caplog.set_level(logging.WARNING)
    iterator = dataset.create_tuple_iterator(num_epochs=2, output_numpy=True)
    for _ in range(2):
        assert sorted(int(label[0]) for _, label in iterator) == list(range(GOOD))
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    for path in bad:
        assert sum(str(path) in m for m in skipped) == 1, skipped
    assert len(skipped) == len(BAD), skipped
