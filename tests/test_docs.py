"""The README and the model cards show commands that work: every script, option, config and model
they name exists, and each English card shows the same commands as its Chinese twin
(``tools/doc_check.py``). The fixture cards under ``tests/fixtures/docs`` show the checker
accepting a correct card and naming each kind of mistake in a wrong one."""
import subprocess
import sys

import pytest

from conftest import ROOT

from tools.doc_check import Checker, Command, check_all, commands, is_placeholder

FIXTURES = ROOT / "tests" / "fixtures" / "docs"


@pytest.fixture(scope="module")
def checker():
    return Checker()


def test_commands_are_read_as_the_shell_reads_them():
    text = "\n".join([
        "```bash",
        "# a comment line",
        "DEVICE_NUM=8 RANK=0 bash dla/scripts/run_eval.sh \\",
        "    /data \"my file.ckpt\"   # trailing comment",
        "pip install -r requirements.txt && python scripts/demo.py > demo.log 2>&1",
        "```",
        "```console",
        "$ python benchmark.py --models dla34",
        "an output line --not_a_command",
        "```",
        "```python",
        "print('not shell')",
        "```",
    ])
    assert commands(text) == [
        Command(3, ("DEVICE_NUM=8", "RANK=0"), ("bash", "dla/scripts/run_eval.sh", "/data", "my file.ckpt")),
        Command(5, (), ("pip", "install", "-r", "requirements.txt")),
        Command(5, (), ("python", "scripts/demo.py")),
        Command(8, (), ("python", "benchmark.py", "--models", "dla34")),
    ]
    assert commands(text)[0].text == "DEVICE_NUM=8 RANK=0 bash dla/scripts/run_eval.sh /data my file.ckpt"


@pytest.mark.parametrize("word, placeholder", [
    ("PATH", True), ("[CONFIG_PATH]", True), ("hccl_8p_<ip>.json", True), ("$DATA", True), ("a/…/b", True),
    ("config/dla_demo_config.yaml", False), ("dla34", False), ("./demo_data", False), ("8", False),
])
def test_placeholders_are_told_from_real_values(word, placeholder):
    assert is_placeholder(word) is placeholder


def test_a_correct_card_passes(checker):
    english, chinese = FIXTURES / "good" / "README.md", FIXTURES / "good" / "README_CN.md"
    findings = checker.check_file(english) + checker.check_file(chinese) + checker.check_pair(english, chinese)
    assert findings == []


def test_each_mistake_in_a_card_is_named(checker):
    findings = checker.check_file(FIXTURES / "bad" / "README.md")
    expected = {
        4: "--epoch_sise: not an option of dla/train.py (model dla46_c) (did you mean --epoch_size?)",
        5: "dla/trian.py: no such script",
        6: "config/dla_tiny_config.yaml: no such config file",
        7: "--arch dla35: no such registered model",
        8: "--gem_p: not an option of dla/eval.py (model dla46_c)",  # MultiGrain's key, not DLA's
        9: "--node_rnk: not an option of dla/scripts/run_distribute_train_msrun.sh",
        10: "dla/scripts/run_eval.sh takes 2 to 3 arguments",
        14: "create_model(\"dla35x\"): no such registered model",
    }
    assert sorted(f.line for f in findings) == sorted(expected)
    for finding in findings:
        assert finding.message.startswith(expected[finding.line]), finding


def test_english_and_chinese_cards_must_show_the_same_commands(checker):
    findings = checker.check_pair(FIXTURES / "bad" / "README.md", FIXTURES / "bad" / "README_CN.md")
    assert [(f.path.rsplit("/", 1)[-1], f.line, f.message) for f in findings] == [
        ("README.md", 11, "not in README_CN.md: python dla/train.py --config_path config/dla_demo_config.yaml "
                          "--epoch_size 2"),
        ("README_CN.md", 11, "not in README.md: python dla/train.py --config_path config/dla_demo_config.yaml "
                             "--epoch_size 3"),
    ]


def test_the_repository_docs_name_existing_commands():
    findings = check_all(ROOT)
    assert not findings, "\n".join(map(str, findings))


def test_the_checker_loads_without_mindspore():
    probe = "import sys; import tools.doc_check; print('mindspore' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_the_readme_quick_start_is_what_ci_and_the_demo_test_run():
    """The README's two commands are the ones the suite runs: command 2 is `.ci/run`'s line verbatim,
    and command 1's demo is the script tests/test_demo.py runs end to end (>= 95 % top-1)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("## Two commands"):]
    shown = [c.text for c in commands(block[:block.index("\n## ", 3)])]
    assert shown == ["pip install -r requirements.txt", "python scripts/demo.py",
                     "pip install -r requirements-test.txt", "python -m pytest"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()[-1]
    assert ci == "pip install -r requirements-test.txt && python -m pytest"
    demo_test = (ROOT / "tests" / "test_demo.py").read_text(encoding="utf-8")
    assert 'run_script("scripts/demo.py"' in demo_test


def test_a_broken_command_in_docs_pages_is_found(tmp_path):
    """docs/*.md are checked like the cards (the README is an index; the manual's commands live there)."""
    from tools.doc_check import doc_files
    assert {p.name for p in doc_files(ROOT) if p.parent.name == "docs"} >= {"distributed.md", "usage.md", "weights.md"}
    page = tmp_path / "page.md"
    page.write_text("```bash\npython dla/train.py --config_path config/dla_demo_config.yaml --no_such_key 1\n```\n")
    (finding,) = check_all(ROOT, [page])
    assert finding.message.startswith("--no_such_key: not an option of dla/train.py")
