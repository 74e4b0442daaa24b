"""The C++ decode pipeline and bad files: every good image of an epoch exactly once, each bad file
reported once by path, 16-bit PNG, decompression bombs, a process-killing JPEG, a wrong data_path.

Images are told apart by label: each good image has its own class (folder or list-file label)."""
import io
import logging
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from common.config import parse_args
from common.data import create_dataset, read_rgb
from common.errors import DatasetError
from common.data.image_file import read_encoded

GOOD = 10


def cfg_for(data, *extra):
    return parse_args(["--data_path", str(data), "--image_size", "32", "--batch_size", "1",
                       "--num_parallel_workers", "2", "--num_classes", str(GOOD), *extra])


def jpeg_bytes(value, size=(60, 40)):
    rng = np.random.default_rng(value)
    image = np.clip(value + rng.integers(-20, 21, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=90)
    return out.getvalue()


def damaged_huffman_table(data):
    """The file with one DHT code count raised: PIL opens its header, MindSpore 2.10's Decode
    crashed the process on such files (SIGSEGV/SIGFPE) before ImageSource checked them."""
    pos = data.index(b"\xff\xc4")
    data = bytearray(data)
    data[pos + 5 + 1] = 200  # 200 codes of length 2
    return bytes(data)


def png16(values):
    out = io.BytesIO()
    Image.fromarray(values.astype(np.uint16)).save(out, "PNG")
    return out.getvalue()


BAD = {
    "corrupt.jpg": lambda: damaged_huffman_table(jpeg_bytes(100)),
    "empty.jpg": lambda: b"",
    "truncated.jpg": lambda: jpeg_bytes(150)[:400],
}


def good_image(i):
    """JPEGs, and a 16-bit greyscale PNG among them (C++ decode must take it too)."""
    return png16(np.full((40, 60), 257 * 20 * i)) if i == 3 else jpeg_bytes(20 * i)


@pytest.fixture()
def bad_tree(tmp_path):
    """train/<class i>/img.* for GOOD classes; the bad files sit in classes 0, 4 and 7."""
    for i in range(GOOD):
        folder = tmp_path / "train" / f"c{i:02d}"
        folder.mkdir(parents=True)
        (folder / ("img.png" if i == 3 else "img.jpg")).write_bytes(good_image(i))
    bad_paths = []
    for (name, make), i in zip(BAD.items(), (0, 4, 7)):
        path = tmp_path / "train" / f"c{i:02d}" / name
        path.write_bytes(make())
        bad_paths.append(path)
    lines = [f"train/c{i:02d}/{'img.png' if i == 3 else 'img.jpg'} {i}" for i in range(GOOD)]
    lines += [f"{p.relative_to(tmp_path)} 0" for p in bad_paths]
    np.random.default_rng(0).shuffle(lines)
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    return tmp_path, bad_paths


@pytest.mark.parametrize("source, deterministic", [("folders", False), ("list", False), ("list", True)])
def test_every_good_image_arrives_exactly_once_and_each_bad_file_is_reported_once(bad_tree, source, deterministic,
                                                                                  caplog):
    root, bad_paths = bad_tree
    extra = ["--cls_label_path_train", "list.txt"] if source == "list" else []
    extra += ["--deterministic", str(deterministic)]
    dataset = create_dataset(cfg_for(root, *extra), "train")  # shuffled, 2 workers, training transforms
    assert dataset.get_dataset_size() == GOOD + len(BAD)  # counted from the files, before reading them
    caplog.set_level(logging.WARNING)
    iterator = dataset.create_tuple_iterator(num_epochs=2, output_numpy=True)
    for _ in range(2):
        labels = sorted(int(label[0]) for _, label in iterator)
        assert labels == list(range(GOOD))
    messages = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    for path in bad_paths:
        assert sum(str(path) in m for m in messages) == 1, messages  # once, not once per epoch
    assert len(messages) == len(BAD)


def test_in_sink_mode_the_next_good_image_stands_in_so_epochs_keep_their_batch_count(bad_tree, caplog):
    root, bad_paths = bad_tree
    cfg = cfg_for(root, "--dataset_sink_mode", "True", "--device_target", "GPU")  # the pipeline only: no device
    dataset = create_dataset(cfg, "train")
    caplog.set_level(logging.WARNING)
    labels = [int(label[0]) for _, label in dataset.create_tuple_iterator(num_epochs=1, output_numpy=True)]
    assert len(labels) == dataset.get_dataset_size() == GOOD + len(BAD)
    assert set(labels) == set(range(GOOD))
    messages = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert sorted(messages) == sorted(m for m in messages if any(str(p) in m for p in bad_paths))
    assert len(messages) == len(BAD)


def test_each_file_is_checked_once_until_it_changes(bad_tree, monkeypatch, caplog):
    """Epoch 2 reads the bytes without checking them again; a file rewritten since (same size,
    damaged so that Decode would crash) is checked again, reported and left out."""
    import os
    from common.data import image_file
    from common.data.dataset import ImageSource
    from common.data.samples import samples_from_folder
    root, _ = bad_tree
    checked = []
    real_check = image_file.check_jpeg
    monkeypatch.setattr(image_file, "check_jpeg", lambda data: checked.append(data) or real_check(data))
    samples = samples_from_folder(str(root / "train"))
    source = ImageSource(samples)
    first = [int(label) for _, label in source]
    jpegs_read = len(checked)
    assert sorted(first) == list(range(GOOD)) and jpegs_read >= GOOD - 1  # (one good image is a PNG)
    assert [int(label) for _, label in source] == first
    assert len(checked) == jpegs_read + 2, "only the corrupt and truncated JPEGs (never passed) are checked again"

    rewritten = root / "train" / "c05" / "img.jpg"
    data = rewritten.read_bytes()
    rewritten.write_bytes(damaged_huffman_table(data))
    assert len(rewritten.read_bytes()) == len(data)
    os.utime(rewritten, ns=(os.stat(rewritten).st_atime_ns, os.stat(rewritten).st_mtime_ns + 1_000_000))
    caplog.set_level(logging.WARNING)
    third = [int(label) for _, label in source]
    assert sorted(third) == [i for i in range(GOOD) if i != 5]
    assert any(str(rewritten) in r.getMessage() for r in caplog.records)


def test_16_bit_greyscale_png_keeps_its_grey_levels(tmp_path):
    """A 16-bit ramp 0..65535 is 0..255 in 8 bits (mean 127.5), not clipped to white."""
    path = tmp_path / "ramp.png"
    path.write_bytes(png16(np.linspace(0, 65535, 64 * 64).reshape(64, 64)))
    image = read_rgb(str(path))  # predict's reader
    assert image.shape == (64, 64, 3) and abs(image.mean() - 127.5) < 1.0
    (tmp_path / "val" / "a").mkdir(parents=True)
    (tmp_path / "val" / "a" / "ramp.png").write_bytes(path.read_bytes())
    cfg = parse_args(["--data_path", str(tmp_path), "--image_size", "64", "--crop_pct", "1.0",
                      "--mean", "[0,0,0]", "--std", "[1,1,1]", "--num_parallel_workers", "1"])
    decoded, _ = next(create_dataset(cfg, "val", batch_size=1).create_tuple_iterator(output_numpy=True))
    assert abs(decoded.mean() * 255 - 127.5) < 1.0


def png_header_only(width, height):
    """A PNG that declares ``width`` x ``height`` pixels (what a decompression bomb claims)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [10000, 30000])  # over PIL's warning limit; over its error limit
def test_decompression_bomb_is_unreadable_by_path(tmp_path, side):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(side, side))
    for read in (read_encoded, read_rgb):
        with pytest.raises(DatasetError, match=f"unreadable image {path}: .*decompression bomb"):
            read(str(path))


def test_a_list_whose_entries_are_all_missing_is_one_line(tmp_path):
    (tmp_path / "list.txt").write_text("".join(f"nowhere/{i}.jpg {i % 2}\n" for i in range(40)))
    with pytest.raises(DatasetError, match=r"none of the first 32 images listed in list.txt exists .*nowhere/0.jpg"):
        create_dataset(cfg_for(tmp_path, "--cls_label_path_train", "list.txt"), "train")
