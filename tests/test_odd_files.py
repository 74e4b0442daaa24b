"""Odd files in a dataset (issue 25): a FIFO, a device or a socket among the images is skipped with a warning
naming it (the one reader thread used to block in ``open()`` forever); list files written by Windows tools
(UTF-8 BOM, CRLF, UTF-16, backslash paths) are read whole (a BOM used to drop the first entry)."""
import os
import socket

import pytest

from common.data.image_file import read_encoded, read_rgb
from common.data.samples import class_names, samples_from_list
from common.errors import DatasetError
from conftest import run_script


def _odd_files(folder):
    """{path: what it is}: a FIFO, a socket and a link to /dev/zero (a device read forever), named as images."""
    folder.mkdir(parents=True, exist_ok=True)
    fifo, sock, device = folder / "fifo.png", folder / "sock.png", folder / "zero.png"
    os.mkfifo(fifo)
    os.symlink("/dev/zero", device)
    server = socket.socket(socket.AF_UNIX)
    here = os.getcwd()
    os.chdir(folder)  # bound by its relative name: a socket's path is limited to 107 bytes
    try:
        server.bind(sock.name)
    finally:
        os.chdir(here)
    return {fifo: "a FIFO", sock: "a socket", device: "a character device"}, server


@pytest.mark.timeout(60)  # a blocking open() of the FIFO fails the test instead of hanging the suite
@pytest.mark.parametrize("read", [read_encoded, read_rgb], ids=["training reader", "predict reader"])
def test_reading_a_file_that_is_not_regular_names_it_and_never_blocks(tmp_path, read):
    odd, server = _odd_files(tmp_path / "odd")
    with server:
        for path, what in odd.items():
            with pytest.raises(DatasetError, match=f"unreadable image {path}: not a regular file \\({what}\\)"):
                read(str(path))


@pytest.mark.timeout(60)
def test_a_list_or_label_file_that_is_a_fifo_is_one_line(tmp_path):
    os.mkfifo(tmp_path / "train.txt")
    with pytest.raises(DatasetError, match="list file .*train.txt cannot be read: not a regular file \\(a FIFO\\)"):
        samples_from_list(str(tmp_path / "train.txt"), str(tmp_path))

    class Cfg(dict):
        __getattr__ = dict.__getitem__
    with pytest.raises(DatasetError, match="label file .*train.txt cannot be read: not a regular file"):
        class_names(Cfg(label_file=str(tmp_path / "train.txt")))


@pytest.mark.parametrize("encoding,newline", [("utf-8-sig", "\r\n"), ("utf-8-sig", "\n"), ("utf-16", "\r\n"),
                                              ("utf-8", "\r")])
def test_list_files_as_windows_tools_write_them(tmp_path, encoding, newline):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "1.png").write_bytes(b"")
    lines = ["cat\\1.png 0", "dog/2.png 1", "", "dog/3 b.png 1"]  # a Windows path, a blank line, a space in a name
    (tmp_path / "list.txt").write_bytes((newline.join(lines) + newline).encode(encoding))
    assert samples_from_list(str(tmp_path / "list.txt"), str(tmp_path), num_classes=2) == [
        (str(tmp_path / "cat/1.png"), 0), (str(tmp_path / "dog/2.png"), 1), (str(tmp_path / "dog/3 b.png"), 1)]

    class Cfg(dict):
        __getattr__ = dict.__getitem__
    (tmp_path / "names.txt").write_bytes("cat\r\ndog\r\n".encode(encoding))
    assert class_names(Cfg(label_file=str(tmp_path / "names.txt"))) == ["cat", "dog"]


def test_a_list_file_that_is_not_text_is_one_line(tmp_path):
    (tmp_path / "list.txt").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\xfd")
    with pytest.raises(DatasetError, match="is not a text list file"):
        samples_from_list(str(tmp_path / "list.txt"), str(tmp_path))


@pytest.mark.slow
def test_training_skips_odd_files_and_reads_a_windows_list_whole(demo_data, tmp_path):
    """A real run: train from a list file saved by Notepad (BOM, CRLF, backslashes) that also names a FIFO,
    a socket and /dev/zero; validation from class folders holding the same; bounded by a timeout."""
    train = (demo_data / "train_list.txt").read_text().splitlines()[:16]
    odd, server = _odd_files(demo_data.parent / f"odd-{tmp_path.name}")
    names = [os.path.relpath(p, demo_data) for p in odd]
    windows = [line.replace("/", "\\") for line in train] + [f"{name} 0" for name in names]
    (tmp_path / "train.txt").write_bytes(("\r\n".join(windows) + "\r\n").encode("utf-8-sig"))
    val = tmp_path / "data" / "val"
    for line in (demo_data / "val_list.txt").read_text().splitlines()[:8]:
        path, label = line.rsplit(maxsplit=1)
        (val / label).mkdir(parents=True, exist_ok=True)
        os.symlink(demo_data / path, val / label / os.path.basename(path))
    val_odd, val_server = _odd_files(val / "0")
    with server, val_server:
        proc = run_script("dla/train.py", "--model", "dla46_c", "--num_classes", "10", "--device_target", "CPU", "--mode", "PYNATIVE",
                          "--image_size", "32", "--crop_pct", "1.0", "--batch_size", "8", "--epoch_size", "1",
                          "--num_parallel_workers", "1", "--data_path", demo_data, "--val_dir", val,
                          "--cls_label_path_train", tmp_path / "train.txt", "--save_checkpoint", "False",
                          "--output_dir", tmp_path / "out", timeout=600)
    skipped = [line for line in proc.stderr.splitlines() if "skipping" in line]
    expected = {**{os.path.join(demo_data, n): w for n, w in zip(names, odd.values())},
                **{str(p): w for p, w in val_odd.items()}}
    assert sorted(skipped) == sorted(f"WARNING: skipping unreadable image {p}: not a regular file ({w})"
                                     for p, w in expected.items()), proc.stderr[-3000:]
    assert "epoch: 1 eval: top_1_accuracy" in proc.stdout  # the run went through (and a BOM-broken first
    #                                                          entry would be one more "skipping" line above)
