"""multigrain/predict.py: classes like every family, and --embeddings equal to the retrieval eval's embeddings
(multigrain.src.task.extract, what retrieval_eval ranks) for the same images, from a checkpoint and from an
embedding-head MINDIR export (export batch 4 for 6 images: the last batch is padded)."""
import ast

import numpy as np
import pytest

from conftest import ROOT, run_script

pytestmark = pytest.mark.slow
N_IMAGES = 6
EVAL_GEM_P = "4.0"  # not the checkpoint's 3: both sides must apply the eval exponent
IMAGE_SIZE = "64"   # 2x2 maps into GeM (at 32 px it pools one value, where p makes no difference)


def common_args(demo_data):
    return ["--config_path", "config/multigrain_demo_config.yaml", "--data_path", demo_data,
            "--num_parallel_workers", "1", "--eval_gem_p", EVAL_GEM_P, "--image_size", IMAGE_SIZE]


@pytest.fixture(scope="module")
def setup(demo_data, tmp_path_factory):
    """A seeded 10-class checkpoint, a 6-image list file and the retrieval eval's embeddings of those images."""
    import mindspore as ms
    from common import create_model
    from common.config import parse_args
    from common.data import create_dataset
    from multigrain.src.task import HOOKS, extract

    tmp = tmp_path_factory.mktemp("mg_predict")
    ms.set_seed(3)
    net = create_model("multigrain_resnet50", num_classes=10)
    ckpt = tmp / "mg.ckpt"
    ms.save_checkpoint(net, str(ckpt))
    lines = (demo_data / "query_list.txt").read_text().split("\n")[:N_IMAGES]
    (tmp / "six.txt").write_text("\n".join(lines) + "\n")
    images = [str(demo_data / line.split()[0]) for line in lines]

    cfg = parse_args([*map(str, common_args(demo_data)), "--cls_label_path_val", str(tmp / "six.txt")],
                     str(ROOT / "config" / "multigrain_demo_config.yaml"))
    net = create_model("multigrain_resnet50", num_classes=10, checkpoint_path=str(ckpt))
    net.set_train(False)
    HOOKS.prepare_eval_net(cfg, net)  # what eval.py does before retrieval_eval
    _, reference, _ = extract(net, create_dataset(cfg, "val"))
    return {"tmp": tmp, "ckpt": ckpt, "images": images, "reference": reference}


def predict(demo_data, setup, model_file, *extra, check=True):
    return run_script("multigrain/predict.py", *common_args(demo_data), "--ckpt_file", model_file,
                      "--predict_path", ",".join(setup["images"]), *extra, check=check)


def read_embeddings(npy):
    return np.load(npy), npy.with_suffix(".txt").read_text().splitlines()


def test_checkpoint_embeddings_equal_the_retrieval_evals(demo_data, setup):
    out = setup["tmp"] / "ckpt_emb.npy"
    proc = predict(demo_data, setup, setup["ckpt"], "--embeddings", out)
    classes = [ast.literal_eval(l) for l in proc.stdout.splitlines() if l.startswith("{'class_ids'")]
    assert [c["file_name"] for c in classes] == setup["images"]
    embeddings, names = read_embeddings(out)
    assert names == setup["images"]
    assert embeddings.shape == (N_IMAGES, 2048) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(embeddings, setup["reference"], atol=1e-5)


def test_embedding_export_gives_the_same_embeddings(demo_data, setup):
    tmp = setup["tmp"]
    run_script("multigrain/export.py", *common_args(demo_data), "--ckpt_file", setup["ckpt"],
               "--export_head", "embedding", "--export_batch_size", "4", "--file_name", tmp / "emb")
    embeddings, names = None, None
    proc = predict(demo_data, setup, tmp / "emb.mindir", "--embeddings", tmp / "mindir_emb.npy")
    embeddings, names = read_embeddings(tmp / "mindir_emb.npy")
    assert names == setup["images"]
    np.testing.assert_allclose(embeddings, setup["reference"], atol=1e-5)
    assert not [l for l in proc.stdout.splitlines() if l.startswith("{'class_ids'")]  # no classes in this file

    proc = predict(demo_data, setup, tmp / "emb.mindir", check=False)
    lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith("[WARNING]")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "is an embedding export: pass --embeddings OUT.npy" in lines[0]


def test_retrieval_eval_of_an_export_is_refused_in_one_line(demo_data, tmp_path):
    proc = run_script("multigrain/eval.py", *common_args(demo_data), "--ckpt_file", tmp_path / "m.onnx",
                      "--retrieval", "True", check=False)
    lines = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith("[WARNING]")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "--retrieval needs a checkpoint (.ckpt)" in lines[0]


def test_streamed_embeddings_of_twice_the_images_with_an_unreadable_one(demo_data, setup, tmp_path):
    """2x the reference images in batches of 4 with a junk file among them: the .npy (header rewritten for the
    rows written) holds the readable images' embeddings in the names file's order, the first 6 the references."""
    extra = [str(p) for p in sorted((demo_data / "val" / "5").glob("*.png"))[:N_IMAGES]]
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG not really")
    images = setup["images"] + [str(junk)] + extra
    (tmp_path / "twelve.txt").write_text("".join(f"{p}\n" for p in images))
    out = tmp_path / "emb.npy"
    proc = run_script("multigrain/predict.py", *common_args(demo_data), "--ckpt_file", setup["ckpt"],
                      "--predict_path", tmp_path / "twelve.txt", "--batch_size", "4", "--embeddings", out,
                      "--results_file", tmp_path / "classes.jsonl")
    embeddings, names = read_embeddings(out)
    assert names == setup["images"] + extra and embeddings.shape == (2 * N_IMAGES, 2048)
    np.testing.assert_allclose(embeddings[:N_IMAGES], setup["reference"], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
    assert f"embeddings: {2 * N_IMAGES}x2048 to {out}" in proc.stdout
    rows = (tmp_path / "classes.jsonl").read_text().splitlines()
    assert len(rows) == 2 * N_IMAGES + 1 and '"error": "unreadable image' in rows[N_IMAGES]


def test_retrieval_eval_takes_the_gallery_from_predicts_embeddings(demo_data, setup):
    """The same metrics whether the gallery is embedded by the eval or read (memory-mapped) from predict's file."""
    from common import create_model
    from common.config import parse_args
    from multigrain.src.task import HOOKS, retrieval_eval
    tmp = setup["tmp"]
    run_script("multigrain/predict.py", *common_args(demo_data), "--ckpt_file", setup["ckpt"],
               "--predict_path", tmp / "six.txt", "--embeddings", tmp / "gallery.npy")
    argv = [*map(str, common_args(demo_data)), "--query_list", str(tmp / "six.txt"),
            "--gallery_list", str(tmp / "six.txt")]
    config = str(ROOT / "config" / "multigrain_demo_config.yaml")
    net = create_model("multigrain_resnet50", num_classes=10, checkpoint_path=str(setup["ckpt"]))
    net.set_train(False)
    HOOKS.prepare_eval_net(parse_args(argv, config), net)
    embedded = retrieval_eval(parse_args(argv, config), net)
    read = retrieval_eval(parse_args(argv + ["--gallery_embeddings", str(tmp / "gallery.npy")], config), net)
    assert read == pytest.approx(embedded, abs=1e-6)


@pytest.mark.slow
def test_embeddings_of_a_gallery_4x_larger_stay_in_the_same_memory(demo_data, setup, tmp_path):
    """N and 4N images at 224 px, batches of 16: the 4N run's peak RSS stays within noise of the N run's, though
    its 3N more decoded images alone would take 3N x 224 x 224 x 3 floats (111 MB at N = 64, above the noise
    bound: predict decoded the whole list into one array before), and its first N rows are the N run's."""
    from PIL import Image
    from test_predict_stream import N, RSS_NOISE_KB, peak_rss_kb
    assert 3 * N * 224 * 224 * 3 * 4 > RSS_NOISE_KB * 1024  # the bound tells streaming from holding the images
    rng = np.random.RandomState(1)
    paths = []
    for i in range(4 * N):  # small files: the pipeline resizes them to 224 px
        paths.append(tmp_path / f"{i:04d}.png")
        Image.fromarray(rng.randint(0, 256, (48, 40, 3), np.uint8)).save(paths[-1])
    runs = {}
    for count in (N, 4 * N):
        names = tmp_path / f"list{count}.txt"
        names.write_text("".join(f"{p}\n" for p in paths[:count]))
        out = tmp_path / f"emb{count}.npy"
        argv = ["multigrain/predict.py", *common_args(demo_data), "--image_size", "224", "--batch_size", "16",
                "--ckpt_file", setup["ckpt"], "--predict_path", names, "--embeddings", out,
                "--results_file", tmp_path / f"classes{count}.csv"]
        runs[count] = (peak_rss_kb(argv)[0], *read_embeddings(out))
    (small_rss, small, small_names), (large_rss, large, large_names) = runs[N], runs[4 * N]
    assert large_rss - small_rss < RSS_NOISE_KB, (small_rss, large_rss)
    assert large.shape == (4 * N, 2048) and large_names == list(map(str, paths))
    np.testing.assert_allclose(large[:N], small, atol=1e-5)
