"""Names the loader lists can be opened and saved; writes never leave the workspace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from promptdeck.errors import ConfigError, DatasetError, PromptFileError
from promptdeck.evals.suite import load_suite
from promptdeck.store.db import Store
from promptdeck.workspace.dataset_edit import load_table, save_table
from promptdeck.workspace.prompt_edit import PromptFiles
from promptdeck.workspace.prompts import load_prompts

VARIANT = "model: local/smollm2\nuser: '{{ input }}'\n"


@pytest.mark.parametrize("stem", ["My prompt (v2)", "café", "réponse courte", "v1.2-final"])
def test_a_file_the_loader_lists_can_be_opened_and_saved(tmp_path: Path, stem: str) -> None:
    (tmp_path / "prompts" / "t").mkdir(parents=True)
    (tmp_path / "prompts" / "t" / f"{stem}.yaml").write_text(VARIANT)
    library = load_prompts(tmp_path / "prompts")
    assert list(library.variants) == [f"t/{stem}"] and not library.errors
    files = PromptFiles(tmp_path / "prompts", Store(tmp_path / "s.sqlite"))
    loaded = files.load(f"t/{stem}")
    files.save(f"t/{stem}", loaded.text + "tags: [x]\n", loaded.fingerprint)
    files.duplicate(f"t/{stem}", f"t/{stem} copy")
    assert (tmp_path / "prompts" / "t" / f"{stem} copy.yaml").exists()


@pytest.mark.parametrize(
    "stem", ['<img src=x onerror="alert(1)">', " leading", "trailing.", "x" * 240], ids=str
)
def test_a_file_named_out_of_the_rule_is_listed_with_what_to_do(tmp_path: Path, stem: str) -> None:
    (tmp_path / "prompts" / "t").mkdir(parents=True)
    (tmp_path / "prompts" / "t" / "good.yaml").write_text(VARIANT)
    (tmp_path / "prompts" / "t" / f"{stem}.yaml").write_text(VARIANT)
    library = load_prompts(tmp_path / "prompts")
    assert list(library.variants) == ["t/good"]  # the rest stays usable
    [error] = library.errors
    assert "rename the file" in str(error)


def test_a_linked_task_folder_is_never_written(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "v.yaml").write_text(VARIANT)
    workspace = tmp_path / "ws"
    (workspace / "prompts").mkdir(parents=True)
    (workspace / "prompts" / "shared").symlink_to(elsewhere)
    assert list(load_prompts(workspace / "prompts").variants) == []  # links are not followed
    files = PromptFiles(workspace / "prompts", Store(tmp_path / "s.sqlite"))
    loaded = files.load("shared/v")
    with pytest.raises(PromptFileError, match="outside this workspace"):
        files.save("shared/v", loaded.text + "tags: [x]\n", loaded.fingerprint)
    with pytest.raises(PromptFileError, match="outside this workspace"):
        files.create("shared/new", VARIANT)
    with pytest.raises(PromptFileError, match="outside this workspace"):
        files.delete("shared/v", loaded.fingerprint)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["v.yaml"]
    assert (elsewhere / "v.yaml").read_text() == VARIANT


def test_a_dataset_linked_outside_the_workspace_is_not_written(tmp_path: Path) -> None:
    target = tmp_path / "outside" / "d.csv"
    target.parent.mkdir()
    target.write_text("id,input\na,Hello\n")
    workspace = tmp_path / "ws"
    (workspace / "datasets").mkdir(parents=True)
    (workspace / "datasets" / "d.csv").symlink_to(target)
    table = load_table(workspace / "datasets" / "d.csv")
    frame = table.frame()
    frame.loc[0, "input"] = "changed"
    with pytest.raises(DatasetError, match="outside this workspace"):
        save_table(table, frame, Store(tmp_path / "s.sqlite"), workspace)
    assert target.read_text() == "id,input\na,Hello\n"


@pytest.mark.parametrize("dataset", ["../../secret.csv", "/etc/passwd", "link.csv"])
def test_a_suite_dataset_outside_its_folder_is_refused(tmp_path: Path, dataset: str) -> None:
    (tmp_path / "secret.csv").write_text("id,input\na,token\n")
    suites = tmp_path / "ws" / "datasets"
    suites.mkdir(parents=True)
    (suites / "link.csv").symlink_to(tmp_path / "secret.csv")
    (suites / "s.suite.yaml").write_text(f"dataset: {dataset}\nvariants: [t/a]\n")
    with pytest.raises(ConfigError, match=r"line 1: 'dataset': must be a file in this suite"):
        load_suite(suites / "s.suite.yaml")


def test_the_cli_refuses_it_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "s.suite.yaml").write_text("dataset: /etc/passwd\nvariants: [t/a]\n")
    done = subprocess.run(
        [sys.executable, "-m", "promptdeck", "run", "datasets/s.suite.yaml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "must be a file in this suite" in done.stderr
