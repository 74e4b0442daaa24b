"""The project's structure, read from its source (no module is imported):

* no import cycle among the project's modules, counting imports inside functions too;
* ``common`` imports no family (the families are found through the top-level ``families.py``,
  loaded by name at run time: plugin discovery, which a static walk does not see, and need not);
* the data pipeline, the EMA, the optimizers and the trainer reach neither the config parser, the
  model registry nor the family records, not even through another module: they take a config, they
  do not read one (a family's hooks, the data and the trainer load without the layers above them);
* no block of code copied between two family folders.
"""
import ast
import hashlib
from pathlib import Path

from conftest import ROOT

_SKIP_DIRS = {"tests", "__pycache__", ".git", "config", "docs"}
_ENTRY_FILES = {"train.py", "eval.py", "export.py", "predict.py"}  # the same file in every family, on purpose
_WINDOW = 6  # lines of code in a row that count as a copied block


def _families():
    tree = ast.parse((ROOT / "families.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "FAMILIES" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("families.py has no FAMILIES = (...)")


def _project_modules():
    """``{dotted module name: path}`` for every .py file of the project (tests excluded)."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if _SKIP_DIRS & set(rel.parts[:-1]) or any(part.startswith(".") for part in rel.parts):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imported(name, path, node):
    """The module names one import statement of module ``name`` (file ``path``) asks for."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    if node.level:
        base = package.split(".")[:len(package.split(".")) - node.level + 1]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module
    # "from a.b import c": c may be a module (a.b.c) or a name in a.b
    return [f"{prefix}.{alias.name}" for alias in node.names] + [prefix]


def _import_graph(modules):
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _imported(name, path, node):
                # the module itself when it is ours, else its nearest enclosing project module
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    # "from a.b import c" with c a module lists both a.b.c and a.b: keep the module, drop the package
    for name, edges in graph.items():
        graph[name] = {t for t in edges if not any(o.startswith(t + ".") for o in edges)}
    return graph


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_walk_sees_the_project():
    """Guards the tests below against walking nothing: known edges are found."""
    graph = _import_graph(_project_modules())
    assert "common.config" in graph and "common.family" in graph
    assert "common.errors" in graph["common.config"]
    assert "common.family" in graph[f"{_families()[0]}.src"]  # a family's record imports the seam


def test_no_import_cycle():
    cycles = _cycles(_import_graph(_project_modules()))
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_common_imports_no_family():
    families = set(_families()) | {"families"}
    graph = _import_graph(_project_modules())
    into_family = sorted(f"{name} -> {target}" for name, edges in graph.items() if name.split(".")[0] == "common"
                         for target in edges if target.split(".")[0] in families)
    assert not into_family, "common imports a family: " + ", ".join(into_family)


# modules -> the modules they must not reach, directly or through others (imports inside functions count)
_LAYERS_BELOW_CONFIG = ("common.data", "common.ema", "common.optim", "common.trainer")
_ABOVE_THEM = ("common.config", "common.registry", "common.family")


def _forbidden_paths(graph, sources, targets):
    """``["a -> b -> c"]``: the first import path from each module in ``sources`` (a module or package
    prefix) to one in ``targets``."""
    found = []
    for name in sorted(graph):
        if not any(name == s or name.startswith(s + ".") for s in sources):
            continue
        parent, todo = {name: None}, [name]
        while todo:
            node = todo.pop(0)
            for succ in sorted(graph.get(node, ())):
                if succ not in parent:
                    parent[succ] = node
                    todo.append(succ)
        for target in targets:
            if target in parent:
                path, node = [], target
                while node is not None:
                    path.append(node)
                    node = parent[node]
                found.append(" -> ".join(reversed(path)))
    return found


def test_data_ema_optim_and_trainer_reach_no_config_registry_or_family():
    graph = _import_graph(_project_modules())
    assert "common.data.dataset" in graph and "common.trainer" in graph  # the walk sees them
    paths = _forbidden_paths(graph, _LAYERS_BELOW_CONFIG, _ABOVE_THEM)
    assert not paths, "imports above their layer: " + "; ".join(paths)


def test_forbidden_path_finder_follows_imports_through_other_modules():
    graph = {"low": {"mid"}, "low.part": {"errors"}, "mid": {"top"}, "top": set(), "errors": set()}
    assert _forbidden_paths(graph, ("low",), ("top",)) == ["low -> mid -> top"]
    assert _forbidden_paths(graph, ("low.part",), ("top",)) == []


def _code_lines(path):
    """``[(line number, text)]`` of code: blank lines, comments and import statements left out (two
    families importing the same names is not a copied block)."""
    source = path.read_text(encoding="utf-8")
    skip = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            skip.update(range(node.lineno, node.end_lineno + 1))
    lines = []
    for number, line in enumerate(source.splitlines(), 1):
        text = line.split("  #")[0].strip()
        if text and not text.startswith("#") and number not in skip:
            lines.append((number, text))
    return lines


def _family_sources(family):
    for path in sorted((ROOT / family).rglob("*.py")):
        rel = path.relative_to(ROOT / family)
        if (len(rel.parts) == 1 and rel.name in _ENTRY_FILES) or "model_utils" in rel.parts:
            continue
        yield path


def _copies(sources):
    """``["file:line repeats file:line"]`` for every window of code lines found in two families;
    ``sources`` is ``{family: [paths]}``."""
    seen, copies = {}, []  # hash of a window -> (family, "file:line") where it was first seen
    for family, paths in sources.items():
        for path in paths:
            lines = _code_lines(path)
            for start in range(len(lines) - _WINDOW + 1):
                window = "\n".join(text for _, text in lines[start:start + _WINDOW])
                first = seen.setdefault(hashlib.sha1(window.encode()).hexdigest(), (family, f"{path}:{lines[start][0]}"))
                if first[0] != family:
                    copies.append(f"{path}:{lines[start][0]} repeats {first[1]}")
    return copies


def test_no_block_copied_between_families():
    copies = _copies({family: list(_family_sources(family)) for family in _families()})
    assert not copies, f"{len(copies)} block(s) of {_WINDOW} code lines copied between families: " + \
        ", ".join(copies[:5])


def test_copy_finder_finds_a_copy(tmp_path):
    block = "".join(f"x{i} = compute({i})\n" for i in range(_WINDOW))
    (tmp_path / "one.py").write_text("import os\n\n" + block)
    (tmp_path / "two.py").write_text("# another family\n" + block.replace("\n", "  # why\n", 1))
    (tmp_path / "three.py").write_text(block.replace("x3", "y3"))
    copies = _copies({"one": [tmp_path / "one.py"], "two": [tmp_path / "two.py"], "three": [tmp_path / "three.py"]})
    assert copies == [f"{tmp_path / 'two.py'}:2 repeats {tmp_path / 'one.py'}:3"]
