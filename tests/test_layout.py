"""The architecture, checked: ingest never imports rag; the core (rag/*.py) never imports an adapter;
adapters (rag/cli, rag/serve, rag/eval) use only what `rag` exports, plus their own package (the CLI may
also start the servers and the evaluations). Every import is checked, also those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import rag

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = {"rag.cli": {"rag.cli", "rag.serve", "rag.eval"}, "rag.serve": {"rag.serve"}, "rag.eval": {"rag.eval"}}


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) of every import statement in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [a.name for a in node.names], node.lineno))
    return found


def _ours(module: str) -> bool:
    return module.split(".")[0] in ("rag", "ingest")


def test_ingest_never_imports_rag():
    for path in (ROOT / "ingest").rglob("*.py"):
        for module, _, line in _imports(path):
            assert module.split(".")[0] != "rag", f"{path.name}:{line} imports {module}"


def test_the_core_never_imports_an_adapter():
    for path in (ROOT / "rag").glob("*.py"):
        for module, names, line in _imports(path):
            targets = [module] + [f"{module}.{n}" for n in names]
            for target in targets:
                assert not any(target == a or target.startswith(a + ".") for a in ADAPTERS), (
                    f"rag/{path.name}:{line} imports the adapter {target}"
                )


def test_adapters_use_only_the_public_api():
    public = set(rag.__all__)
    for package, allowed in ADAPTERS.items():
        for path in (ROOT / package.replace(".", "/")).glob("*.py"):
            for module, names, line in _imports(path):
                if not _ours(module):
                    continue
                where = f"{path.relative_to(ROOT)}:{line}"
                if module == "rag":
                    others = [n for n in names if n not in public and f"rag.{n}" not in allowed]
                    assert not others, f"{where} imports {others} from rag, which doesn't export them"
                    continue
                assert any(module == a or module.startswith(a + ".") for a in allowed), (
                    f"{where} imports {module}: adapters use `rag`'s exports (add what they need to rag.__all__)"
                )
