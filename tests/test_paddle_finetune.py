"""Finetune the digits from the PaddleClas dla46_c .pdparams (1000 classes) straight into 10 classes
(the session's run, conftest.dla_finetuned)."""
import pytest


@pytest.mark.slow
def test_finetune_from_pdparams_trains(dla_finetuned):
    # the head was skipped, and the log says so in one line
    assert any("re-initialised" in line and "fc.weight" in line and "fc.bias" in line
               for line in dla_finetuned.log.splitlines()), dla_finetuned.log[-3000:]
    assert dla_finetuned.metrics["top_1_accuracy"] > 0.5  # eval.py of the last checkpoint; 10 classes: chance is 0.1
