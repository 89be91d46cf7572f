"""A workspace for page tests: prompts and providers.yaml pointing at the local test server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.llm_server import LLMServer

ROOT = Path(__file__).resolve().parents[2]

VARIANT = """model: fake/{model}
params: {{max_tokens: 50}}
system: You are {model}.
user: "Customer message: {{{{ input }}}}"
checks:
  - {{type: contains, value: Echo}}
"""


@pytest.fixture
def workspace(
    tmp_path: Path, llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    (tmp_path / "prompts" / "t").mkdir(parents=True)
    for model in ("alpha", "beta", "gamma"):
        (tmp_path / "prompts" / "t" / f"{model}.yaml").write_text(VARIANT.format(model=model))
    shutil.copytree(ROOT / "datasets", tmp_path / "datasets")
    (tmp_path / "providers.yaml").write_text(
        f"providers:\n  fake: {{kind: openai, base_url: '{llm_server.openai_url}', free: true}}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROMPTDECK_PROVIDERS", raising=False)
    monkeypatch.delenv("PROMPTDECK_HOME", raising=False)
    yield tmp_path


def open_page(page: str) -> AppTest:
    """The app started at Home, as a browser would, then switched to `page` (pages/x.py)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at
