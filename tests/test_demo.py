"""The README's demo command end to end: >= 95% top-1 on the digits val split, MINDIR == checkpoint."""
import ast
import re

import pytest

from conftest import run_script


@pytest.mark.slow
def test_demo_reaches_95_percent_and_mindir_agrees(tmp_path):
    proc = run_script("scripts/demo.py", "--workdir", tmp_path, timeout=1800)
    out = proc.stdout
    assert re.search(r"epoch: 1 step: \d+/\d+, loss: [\d.]+, lr: [\d.]+, batch_cost: [\d.]+ s, "
                     r"reader_cost: [\d.]+ s, ips: [\d.]+ images/sec, eta: \d+:\d\d:\d\d", out)
    line = next(l for l in out.splitlines() if l.startswith("result: "))
    metrics = ast.literal_eval(line[len("result: "):].split(" ckpt= ")[0])
    assert metrics["top_1_accuracy"] >= 0.95
    assert "agree on the top-1 class of 10/10 images" in out
    assert (tmp_path / "demo_output" / "dla" / "dla46_c.mindir").is_file()
