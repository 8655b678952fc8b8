"""The package's layers import one way, and only the layout module spells artifact paths.

core (``recsys.*``) ← eval ← models and sources (``retrieval``, ``rerank``; neither imports the
other) ← pipeline ← cli / serve. Every import counts, function-level ones included.
"""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"recsys": "recsys", "retrieval": "recsys.retrieval", "rerank": "recsys.rerank", "eval": "recsys.eval",
           "pipeline": "recsys.pipeline", "cli": "recsys.cli", "serve": "recsys.serve"}
LAYER = {"core": 0, "eval": 1, "retrieval": 2, "rerank": 2, "pipeline": 3, "cli": 4, "serve": 4}
ALLOWED = {  # what each part may import besides itself and the layers below it
    "retrieval": set(), "rerank": set(), "cli": {"serve"}, "serve": set(),
}


def part_of(module: str) -> str | None:
    if module != "recsys" and not module.startswith("recsys."):
        return None
    if module == "recsys.__main__":  # ``python -m recsys``: the command line's entry point
        return "cli"
    second = module.split(".")[1] if "." in module else ""
    return second if second in LAYER else "core"


def modules():
    for folder, package in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield path, ".".join([package, *parts]), path.name == "__init__.py"


def imports(path: Path, module: str, is_package: bool):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            for a in node.names:  # "from recsys import layout" imports recsys.layout
                yield node.lineno, f"{target}.{a.name}"


def test_imports_go_one_way():
    bad = []
    for path, module, is_package in modules():
        mine = part_of(module)
        for line, target in imports(path, module, is_package):
            theirs = part_of(target)
            if theirs is None or theirs == mine or target in ("recsys.__version__",):
                continue
            if theirs in ALLOWED.get(mine, set()):
                continue
            if LAYER[theirs] >= LAYER[mine]:
                bad.append(f"{path.relative_to(REPO)}:{line} ({mine}) imports {target} ({theirs})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_the_layering_test_sees_a_bad_import(tmp_path):
    """The walk resolves relative and function-level imports (a check of the check)."""
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from ..rerank.model import Reranker\n    from recsys import layout\n")
    found = [t for _, t in imports(p, "recsys.retrieval.m", False)]
    assert "recsys.rerank.model" in found and "recsys.layout" in found
    assert part_of("recsys.rerank.model") == "rerank" and part_of("recsys.layout") == "core"


ARTIFACT_PATH = re.compile(r"^(data|text|model|index|needs|sources|stages|reranker|als|als_valid)/|^(manifest|summary|fusion|evaluation)\.json$")


def literals(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            yield node.lineno, str(node.values[0].value)


@pytest.mark.parametrize("folder", [*FOLDERS, "benchmarks", "tests"])
def test_only_the_layout_module_spells_artifact_paths(folder):
    bad = [f"{path.relative_to(REPO)}:{line}: {text!r}"
           for path in sorted((REPO / folder).rglob("*.py")) if path != REPO / "recsys" / "layout.py"
           and path != Path(__file__)
           for line, text in literals(path) if ARTIFACT_PATH.match(text)]
    assert not bad, "artifact paths spelled outside recsys/layout.py:\n" + "\n".join(bad)
