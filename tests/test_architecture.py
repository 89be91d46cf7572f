"""The import contract: the layers of docs/ARCHITECTURE.md, enforced.

The package's contracts live in pyproject.toml (`[tool.importlinter]`) and are checked by
import-linter over every import, function-level ones included and indirect ones for the
forbidden contracts. The pages are scripts, not a package, so their rule is checked here
from their syntax trees: they call the core, never the wire or the database.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = [str(Path(sys.executable).parent / "lint-imports")]  # import-linter's own command
# What a page may not import: providers, the registry, the call path, the database, parsers.
PAGE_FORBIDDEN = (
    "promptdeck.model.registry", "promptdeck.model.http", "promptdeck.model.sse",
    "promptdeck.model.openai_compat", "promptdeck.model.anthropic", "promptdeck.model.local",
    "promptdeck.model.call", "promptdeck.model.policy", "promptdeck.store.db",
    "promptdeck.store.migrations", "httpx", "sqlite3", "llama_cpp", "yaml", "ruamel", "jinja2",
    "numpy", "scipy",
)  # fmt: skip


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over the package in `root`, with the repository's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root)}  # ahead of the editable install
    return subprocess.run(
        [*LINT, "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def copy_of_package(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "promptdeck", tmp_path / "promptdeck")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_import_contract_holds() -> None:
    done = lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("scoring/checks.py", "import promptdeck.store.db", "Layers"),
        ("scoring/judge.py", "import promptdeck.workspace.prompts", "Layers"),
        ("analysis/stats.py", "from promptdeck.model.policy import CallPolicy", "model call"),
        ("model/types.py", "import promptdeck.evals.runner", "Layers"),
        ("evals/runner.py", "import streamlit", "streamlit only"),
        ("ui.py", "import promptdeck.promptfoo.importer", "promptfoo is a leaf"),
    ],
)
def test_one_forbidden_import_breaks_the_contract(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    root = copy_of_package(tmp_path)
    target = root / "promptdeck" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    done = lint(root)
    assert done.returncode == 1, done.stdout
    broken_lines = [ln for ln in done.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(broken in ln for ln in broken_lines), done.stdout


def page_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def forbidden_in(path: Path) -> list[str]:
    return [
        name
        for name in page_imports(path)
        if any(name == f or name.startswith(f + ".") for f in PAGE_FORBIDDEN)
    ]


@pytest.mark.parametrize(
    "path", [REPO / "app.py", *sorted((REPO / "pages").glob("*.py"))], ids=lambda p: p.name
)
def test_pages_call_the_core_not_the_wire(path: Path) -> None:
    assert forbidden_in(path) == []


def test_the_page_rule_catches_a_registry_import(tmp_path: Path) -> None:
    page = tmp_path / "page.py"
    page.write_text(
        "from promptdeck.model.registry import Registry\nfrom promptdeck import ui\nimport httpx\n"
    )
    assert forbidden_in(page) == ["promptdeck.model.registry", "promptdeck.model.registry.Registry",
                                  "httpx"]  # fmt: skip
