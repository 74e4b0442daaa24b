"""Check that the commands the README and the model cards show name things that exist.

Every fenced shell block (```bash, sh, shell, console) of a markdown file is read as the shell
would: ``\\`` continuations joined, comments dropped, ``&&``/``;``/``|`` split, redirections and
``NAME=value`` prefixes set aside. For each command:

* the script it runs (``python X.py``, ``bash X.sh``, ``X.sh``) exists;
* each ``--key`` is an option that script accepts: for an entry file (``<family>/train.py`` ...)
  a config key of the command's model (``--model``, else the ``--config_path`` yaml's, else the
  family's default config), a PaddleClas alias or ``--config_path``, read from
  ``common.config.create_parser``; for a launcher (``.sh``) its own options (its ``--help``) plus
  the keys of the entry it starts; for any other script its ``--help``;
* each config file it names exists; each model name (``--model``, ``--arch``, ``--models``) is
  registered, and so is every ``create_model("X")`` anywhere in the file.

A card with a Chinese twin (``README.md`` / ``README_CN.md`` in one folder) must show the same
set of commands. Placeholders (``PATH``, ``[CONFIG_PATH]``, ``<ip>``, ``$VAR``) are not checked.

Nothing is imported at module load; the facts (models, config keys) come from ``common`` the
first time they are needed, which loads the families (and MindSpore) once.

Usage: python tools/doc_check.py [FILE.md ...]   (default: README*.md, every family's cards, docs/*.md)
"""
import dataclasses
import difflib
import functools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
ENTRY_TASKS = ("train", "eval", "export", "predict")
MODEL_OPTIONS = ("model", "arch", "models")
PYTHONS = ("python", "python3", "$PYTHON", "${PYTHON}")
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_SEPARATORS = {"&&", "||", ";", "|", "&"}
_REDIRECT = re.compile(r"^\d*(>>?|<)(&\d+)?(.*)$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_CREATE_MODEL = re.compile(r"create_model\(\s*[\"']([\w.-]+)[\"']")


@dataclasses.dataclass(frozen=True)
class Finding:
    path: str
    line: int
    message: str

    def __str__(self):
        return f"{self.path}:{self.line}: {self.message}"


@dataclasses.dataclass(frozen=True)
class Command:
    line: int      # line of the markdown file where the command starts
    env: tuple     # NAME=value prefixes
    words: tuple   # the command and its arguments, as the shell passes them

    @property
    def text(self):
        """The command normalised (quotes, comments, spacing and line breaks gone)."""
        return " ".join(self.env + self.words)


def is_placeholder(word):
    """A word that stands for something the reader fills in: PATH, [CONFIG_PATH], <ip>, $VAR, ..."""
    return bool(re.fullmatch(r"[A-Z][A-Z0-9_]*", word) or re.fullmatch(r"\[[^\]]*\]", word)
                or re.search(r"<[^>]*>|\$|\{[^}]*\}|…|\.\.\.", word))


def shell_blocks(text):
    """``[(language, first line number, [lines])]`` of the fenced shell blocks of markdown ``text``."""
    blocks, fence, lines = [], None, text.splitlines()
    for number, line in enumerate(lines, 1):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = (match.group(2), match.group(3).lower(), number + 1, [])
        elif fence is not None and line.strip().startswith(fence[0]) and not line.strip()[len(fence[0]):].strip():
            if fence[1] in SHELL_LANGS:
                blocks.append((fence[1], fence[2], fence[3]))
            fence = None
        elif fence is not None:
            fence[3].append(line)
    return blocks


def _logical_lines(language, first, lines):
    """``[(line number, text)]`` with continuations joined; console blocks keep only ``$ `` lines."""
    out, pending, start, prompt_only = [], None, 0, language == "console"
    for number, line in enumerate(lines, first):
        if pending is None:
            stripped = line.strip()
            if prompt_only:
                if not stripped.startswith("$ "):
                    continue
                stripped = stripped[2:]
            pending, start = "", number
        else:
            stripped = line.strip()
        if stripped.endswith("\\") and not stripped.lstrip().startswith("#"):
            pending += stripped[:-1] + " "
            continue
        out.append((start, pending + stripped))
        pending = None
    if pending is not None:
        out.append((start, pending))
    return out


def _split_commands(words):
    """A word list split at ``&&``, ``||``, ``;``, ``|``, ``&``, redirections dropped."""
    commands, current, skip_next = [], [], False
    for word in words:
        if skip_next:
            skip_next = False
            continue
        if word in _SEPARATORS or word.endswith(";"):
            if word.endswith(";") and word != ";":
                current.append(word[:-1])
            commands.append(current)
            current = []
            continue
        redirect = _REDIRECT.match(word)
        if redirect:
            skip_next = not redirect.group(2) and not redirect.group(3)  # "> file": the file is the next word
            continue
        current.append(word)
    commands.append(current)
    return [c for c in commands if c]


def commands(text):
    """Every command of the fenced shell blocks of markdown ``text``, in order."""
    found = []
    for language, first, lines in shell_blocks(text):
        for number, line in _logical_lines(language, first, lines):
            try:
                words = shlex.split(line, comments=True)
            except ValueError as err:
                found.append(Command(number, (), ("<unparsable>", f"{err}: {line}")))
                continue
            for part in _split_commands(words):
                env = tuple(w for w in part[:next((i for i, w in enumerate(part) if not _ENV.match(w)),
                                                  len(part))])
                if len(env) < len(part):
                    found.append(Command(number, env, tuple(part[len(env):])))
    return found


class Repo:
    """What exists in the repository at ``root``: scripts, configs, models, options. Loaded lazily,
    once; the entry files' options and the models come from ``common`` (this repository's)."""

    def __init__(self, root=ROOT):
        self.root = Path(root)
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))

    @functools.cached_property
    def families(self):
        from common.family import families
        return {record.name: record for record in families()}

    @functools.cached_property
    def models(self):
        from common.registry import list_models
        return set(list_models())

    def path(self, relative):
        return self.root / relative.removeprefix("./")

    def config_model(self, config_path):
        """The ``model`` a yaml config names, or None."""
        from common.config import load_yaml
        from common.paddle import flatten_paddle_sections
        return dict(flatten_paddle_sections(load_yaml(str(config_path)), str(config_path))).get("model")

    @property
    def default_model(self):
        """The model a config that names none gets (``common.config.DEFAULTS``), or None."""
        from common.config import DEFAULTS
        return DEFAULTS.get("model", (None,))[0]

    def default_config(self, family):
        return self.root / "config" / self.families[family].default_config

    @functools.lru_cache(maxsize=None)
    def entry_options(self, model):
        """Options an entry file accepts for ``model``: its config keys, aliases, --config_path."""
        from common.config import DEFAULTS, create_parser
        from common.family import model_config_keys
        parser = create_parser({**DEFAULTS, **model_config_keys(model)})
        # every option string the parser accepts, the suppressed PaddleClas aliases included
        actions = parser._actions  # pylint: disable=protected-access
        return {opt[2:] for action in actions for opt in action.option_strings if opt.startswith("--")}

    def help_text(self, script):
        """The ``--help`` output of a script (run from the repository root), or None if it fails."""
        return _help_text(str(self.root), script)


@functools.lru_cache(maxsize=None)
def _help_text(root, script):
    command = ["bash", script] if script.endswith(".sh") else [sys.executable, script]
    env = {k: v for k, v in os.environ.items() if k not in ("DRY_RUN", "MODEL_DIR")}
    try:
        proc = subprocess.run(command + ["--help"], cwd=root, capture_output=True, text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        return None
    return proc.stdout if proc.returncode == 0 else None


def _help_options(text):
    """``--option`` names of an argparse help text (its option lines) or a launcher's usage line."""
    options = set()
    for line in text.splitlines():
        if line.startswith(("  -", "usage:", "Usage:")):
            options.update(re.findall(r"--([A-Za-z][\w-]*)", line))
    return options - {"key"}


def _usage_positionals(text):
    """The positional arguments of a launcher's usage line: ``[(name, optional)]``."""
    usage = next((line for line in text.splitlines() if line.startswith("Usage:")), "")
    return [(group, "optional" in group) for group in re.findall(r"\[([^\]]+)\]", usage)
            if not group.startswith("--")]


def _option_words(words):
    """``[(key, value or None)]`` of the ``--key value`` / ``--key=value`` words (optional brackets dropped)."""
    out = []
    for i, word in enumerate(words):
        word = word.strip("[]")
        if not word.startswith("--") or word == "--":
            continue
        key, eq, value = word[2:].partition("=")
        if not eq:
            following = words[i + 1].strip("[]") if i + 1 < len(words) else None
            value = following if following is not None and not following.startswith("--") else None
        out.append((key, value))
    return out


def _closest(key, known):
    match = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean --{match[0]}?)" if match else ""


class Checker:
    """Checks the commands of markdown files against a ``Repo``."""

    def __init__(self, repo=None):
        self.repo = repo or Repo()

    def check_text(self, text, label):
        findings = []
        for command in commands(text):
            findings += [Finding(label, command.line, message) for message in self.check_command(command)]
        for number, line in enumerate(text.splitlines(), 1):
            for name in _CREATE_MODEL.findall(line):
                if name not in self.repo.models:
                    findings.append(Finding(label, number, f"create_model(\"{name}\"): no such registered model"))
        return findings

    def check_file(self, path):
        path = Path(path)
        return self.check_text(path.read_text(encoding="utf-8"), self._label(path))

    def check_pair(self, english, chinese):
        """Findings for the commands that only one of a card and its Chinese twin shows."""
        english, chinese = Path(english), Path(chinese)
        en = {c.text: c.line for c in commands(english.read_text(encoding="utf-8"))}
        cn = {c.text: c.line for c in commands(chinese.read_text(encoding="utf-8"))}
        return ([Finding(self._label(english), en[t], f"not in {chinese.name}: {t}") for t in en if t not in cn]
                + [Finding(self._label(chinese), cn[t], f"not in {english.name}: {t}") for t in cn if t not in en])

    def _label(self, path):
        try:
            return str(path.resolve().relative_to(self.repo.root))
        except ValueError:
            return str(path)

    def check_command(self, command):
        """Messages for one command (empty: it names nothing missing)."""
        if command.words[0] == "<unparsable>":
            return [f"cannot read this shell line ({command.words[1]})"]
        script, args = self._script(command.words)
        if script is None or is_placeholder(script):
            return []
        if not self.repo.path(script).is_file():
            return [f"{script}: no such script"]
        messages = self._configs(args) + self._models(args)
        if script.endswith(".sh"):
            return messages + self._launcher(script, args)
        parts = Path(script.removeprefix("./")).parts
        if len(parts) == 2 and parts[0] in self.repo.families and parts[1][:-3] in ENTRY_TASKS:
            model = self._entry_model(parts[0], dict(_option_words(args)))
            return messages + self._unknown(args, self.repo.entry_options(model), f"{script} (model {model})")
        help_text = self.repo.help_text(script)
        if help_text is None:
            return messages + [f"{script}: --help failed, its options cannot be checked"]
        return messages + self._unknown(args, _help_options(help_text) | {"help"}, script)

    @staticmethod
    def _script(words):
        """(script path, its arguments) of a command, or (None, ()) when it runs no repository script."""
        program = words[0]
        if program in PYTHONS or program in ("bash", "sh"):
            rest = list(words[1:])
            while rest and rest[0].startswith("-"):
                if rest[0] in ("-m", "-c"):
                    return None, ()
                rest = rest[2:] if rest[0] in ("-X", "-W") else rest[1:]
            return (rest[0], tuple(rest[1:])) if rest else (None, ())
        if program.endswith(".sh"):
            return program, tuple(words[1:])
        return None, ()

    def _entry_model(self, family, options):
        model = options.get("model")
        if model and not is_placeholder(model):
            return model
        config = options.get("config_path")
        if config and not is_placeholder(config) and self.repo.path(config).is_file():
            path = self.repo.path(config)
        else:
            path = self.repo.default_config(family)
        return self.repo.config_model(path) or self.repo.default_model

    def _configs(self, args):
        named = [value for word in args for value in [word.partition("=")[2] if word.startswith("--") else word]]
        return [f"{value}: no such config file" for value in named
                if value.endswith((".yaml", ".yml")) and not is_placeholder(value)
                and not self.repo.path(value).is_file()]

    def _models(self, args):
        messages = []
        for key, value in _option_words(args):
            if key not in MODEL_OPTIONS or value is None or is_placeholder(value):
                continue
            for name in filter(None, value.split(",") if key == "models" else [value]):
                if name not in self.repo.models:
                    messages.append(f"--{key} {name}: no such registered model")
        return messages

    def _unknown(self, args, accepted, what):
        return [f"--{key}: not an option of {what}{_closest(key, accepted)}"
                for key, _ in _option_words(args) if key not in accepted]

    def _launcher(self, script, args):
        """A launcher's own options and positionals, and the entry options it passes through."""
        help_text = self.repo.help_text(script)
        if help_text is None:
            return [f"{script}: --help failed, its options cannot be checked"]
        own = _help_options(help_text) | {"help", "model_dir", "dry-run"}
        usage = _usage_positionals(help_text)
        positionals, extra, i, family = [], [], 0, None
        parts = Path(script.removeprefix("./")).parts
        if len(parts) == 3 and parts[1] == "scripts" and parts[0] in self.repo.families:
            family = parts[0]
        while i < len(args):
            word = args[i]
            key = word[2:].partition("=")[0] if word.startswith("--") else None
            takes_value = key in own - {"help", "dry_run", "dry-run"} and "=" not in word
            if key == "model_dir" and i + 1 < len(args):
                family = Path(args[i + 1]).name
            if key is not None and key in own:
                i += 2 if takes_value else 1
                continue
            (extra if extra or key is not None else positionals).append(word)
            i += 1
        messages = []
        required = sum(1 for _, optional in usage if not optional)
        if not required <= len(positionals) <= len(usage):
            messages.append(f"{script} takes {required} to {len(usage)} arguments "
                            f"({' '.join(g for g, _ in usage)}), got {len(positionals)}")
        if family not in self.repo.families:
            return messages + [f"{script}: which model? run it from <family>/scripts/ or pass --model_dir"]
        config_at = next((n for n, (group, _) in enumerate(usage) if group.startswith("CONFIG_PATH")), None)
        options = {}
        if config_at is not None and config_at < len(positionals) and not is_placeholder(positionals[config_at]):
            options["config_path"] = positionals[config_at]
        model = self._entry_model(family, {**options, **dict(_option_words(extra))})
        entry = "eval" if "eval" in Path(script).name else "train"
        return messages + self._unknown(extra, self.repo.entry_options(model) | own,
                                        f"{script} -> {family}/{entry}.py (model {model})")


def doc_files(root=ROOT):
    """The README, every family's card (both languages) and the pages under docs/ that exist: the
    README is an index, so the manual's commands live in docs/ and must stay true as well."""
    repo = Repo(root)
    names = ["README.md", "README_CN.md"]
    candidates = [repo.root / n for n in names] + [repo.root / f / n for f in repo.families for n in names]
    return [p for p in candidates if p.is_file()] + sorted((repo.root / "docs").glob("*.md"))


def check_all(root=ROOT, files=None):
    """Findings for ``files`` (default: ``doc_files``), with each card's Chinese twin compared."""
    checker = Checker(Repo(root))
    files = [Path(f) for f in files] if files else doc_files(root)
    findings = []
    for path in files:
        findings += checker.check_file(path)
        if path.name == "README.md":
            twin = path.with_name("README_CN.md")
            if twin.is_file():
                findings += checker.check_pair(path, twin)
            elif path.parent.name in checker.repo.families:
                findings.append(Finding(checker._label(path), 1, "no README_CN.md beside this card"))
    return findings


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    findings = check_all(files=argv or None)
    for finding in findings:
        print(finding)
    print(f"{len(findings)} finding(s)" if findings else "the documented commands name existing things")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
