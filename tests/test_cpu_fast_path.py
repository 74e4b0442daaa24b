"""The CPU fast path: ``import common`` caps oneDNN at AVX2 when the user set nothing and keeps a
user's own value (oneDNN reads it once, at MindSpore's first op)."""
import os
import subprocess
import sys

import pytest

ISA_KEY = "ONEDNN_MAX_CPU_ISA"
PROBE = "import os; import common; print(os.environ.get('ONEDNN_MAX_CPU_ISA'))"


def _probe(repo_root, isa=None):
    """The value seen after ``import common`` in a fresh interpreter whose environment lacks it or has ``isa``."""
    env = {k: v for k, v in os.environ.items() if k != ISA_KEY}
    if isa is not None:
        env[ISA_KEY] = isa
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=repo_root, env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    return proc.stdout.split()[-1]


def test_isa_cap_applied_when_unset(repo_root):
    assert _probe(repo_root) == "AVX2"


@pytest.mark.parametrize("users_value", ["AVX512_CORE", "ALL", "SSE41"])
def test_users_isa_value_left_alone(repo_root, users_value):
    assert _probe(repo_root, users_value) == users_value


def test_apply_cpu_fast_path_on_a_given_mapping():
    from common.device import apply_cpu_fast_path
    empty, chosen = {}, {ISA_KEY: "AVX512_CORE_AMX"}
    assert apply_cpu_fast_path(empty) == "AVX2" and empty == {ISA_KEY: "AVX2"}
    assert apply_cpu_fast_path(chosen) == "AVX512_CORE_AMX" and chosen == {ISA_KEY: "AVX512_CORE_AMX"}
