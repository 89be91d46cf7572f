"""Editing prompt variant files from the UI: form fields <-> YAML text, saved with history.

The Prompts page edits a variant as a `Draft` (every field as the text a PM types). Saving
turns the draft back into the file's text with ruamel.yaml's round-trip mode, changing only
the keys whose values changed, so comments, key order and flow style survive and the git
diff shows just the edit. The new text is validated with the same loader the app uses before
anything is written; the write is atomic and refused when the file changed on disk since it
was loaded (fileio). Every write is recorded in the store's file history, so any earlier
version can be restored.
"""

from __future__ import annotations

import difflib
import io
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

from promptdeck.errors import FileConflictError, PromptFileError
from promptdeck.scoring.checks import Check
from promptdeck.store.db import Store
from promptdeck.store.rows import VersionRow
from promptdeck.workspace.fileio import (
    MISSING,
    Loaded,
    NotUTF8,
    check_unchanged,
    delete_versioned,
    load_for_edit,
    outside,
    save_versioned,
)
from promptdeck.workspace.prompts import (
    TOP_LEVEL_KEYS,
    PromptLibrary,
    PromptVariant,
    name_problem,
    variant_from_text,
)
from promptdeck.workspace.yamlfile import parse_yaml

BASELINE_TAG = "baseline"


@dataclass(frozen=True)
class Draft:
    """A variant as form fields; `params`, `checks`, `messages`, `tools` and `output_schema`
    are YAML text."""

    description: str = ""
    model: str = ""
    fallback: str = ""
    tags: str = ""  # comma-separated
    params: str = ""
    system: str = ""
    user: str = ""
    messages: str = ""
    checks: str = ""
    tools: str = ""
    output_schema: str = ""
    max_tool_rounds: str = ""  # a whole number, or empty for the default


def draft_from_text(text: str) -> Draft:
    """The form fields of a variant file (which must be valid YAML)."""
    data = parse_yaml(text) or {}
    if not isinstance(data, dict):
        raise ValueError("a variant file must be a mapping of keys")
    tags = data.get("tags") or []
    return Draft(
        description=str(data.get("description") or ""),
        model=str(data.get("model") or ""),
        fallback=str(data.get("fallback") or ""),
        tags=", ".join(map(str, tags)) if isinstance(tags, list) else str(tags),
        params=_dump_block(data.get("params")),
        system=str(data.get("system") or ""),
        user=str(data.get("user") or ""),
        messages=_dump_block(data.get("messages")),
        checks=_dump_checks(data.get("checks")),
        tools=_dump_block(data.get("tools")),
        output_schema=_dump_block(data.get("output_schema")),
        max_tool_rounds=str(data.get("max_tool_rounds") or ""),
    )


def _dump_block(value: object) -> str:
    if not value:
        return ""
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=4096)


def _dump_checks(value: object) -> str:
    if not isinstance(value, list):
        return _dump_block(value)
    flow = (
        yaml.safe_dump(item, default_flow_style=True, sort_keys=False, width=4096).strip()
        for item in value
    )
    return "".join(f"- {line}\n" for line in flow)


def draft_data(draft: Draft, path: Path) -> dict[str, Any]:
    """The draft as the mapping a variant file holds; YAML fields that do not parse say so."""
    data: dict[str, Any] = {
        "description": draft.description.strip(),
        "model": draft.model.strip(),
        "fallback": draft.fallback.strip(),
        "tags": [t.strip() for t in draft.tags.split(",") if t.strip()],
        "system": draft.system,
        "user": draft.user,
    }
    for key in ("params", "checks", "messages", "tools", "output_schema", "max_tool_rounds"):
        text = getattr(draft, key)
        try:
            data[key] = parse_yaml(text) if text.strip() else None
        except ValueError as exc:
            raise PromptFileError(path, str(exc), field=key) from None
    if data["messages"]:  # multi-turn prompts replace system/user
        data["system"] = data["user"] = ""
    return data


# --- YAML text, round trip ----------------------------------------------------------------


def _yaml() -> YAML:
    rt = YAML()  # round-trip: comments, key order, quotes and flow style are kept
    rt.preserve_quotes = True
    rt.width = 4096  # never fold a long prompt line
    rt.indent(mapping=2, sequence=4, offset=2)
    return rt


def apply_draft(original: str, data: Mapping[str, Any]) -> str:
    """`original` with the keys of `data` set (empty values remove the key), as text."""
    rt = _yaml()
    doc = rt.load(original) if original.strip() else None
    if not isinstance(doc, CommentedMap):
        doc = CommentedMap()
    for key in TOP_LEVEL_KEYS:
        value = data.get(key)
        if value in (None, "", [], {}):
            doc.pop(key, None)
        elif key not in doc:
            before = [k for k in TOP_LEVEL_KEYS[: TOP_LEVEL_KEYS.index(key)] if k in doc]
            doc.insert(len(before), key, _styled(value))
        elif _plain(doc[key]) != value:
            doc[key] = _merged(doc[key], value)
    out = io.StringIO()
    rt.dump(doc, out)
    return out.getvalue()


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _merged(old: Any, new: Any) -> Any:
    """Update a mapping in place (keeping its style and comments); else a fresh value."""
    if isinstance(old, CommentedMap) and isinstance(new, dict):
        for key in [k for k in old if k not in new]:
            del old[key]
        for key, value in new.items():
            if key not in old or _plain(old[key]) != value:
                old[key] = _styled(value)
        return old
    return _styled(new)


def _styled(value: Any) -> Any:
    """Multi-line text as a `|` block; short mappings and lists on one line."""
    if isinstance(value, str):
        return LiteralScalarString(value) if "\n" in value.strip("\n") else value
    if isinstance(value, dict):
        out = CommentedMap((k, _styled(v)) for k, v in value.items())
        if not any(isinstance(v, str) and "\n" in v for v in value.values()):
            out.fa.set_flow_style()
        return out
    if isinstance(value, list):
        seq = CommentedSeq(_styled(v) for v in value)
        if value and all(not isinstance(v, dict | list) for v in value):
            seq.fa.set_flow_style()
        return seq
    return value


def render_draft(
    draft: Draft, original: str, *, name: str, path: Path
) -> tuple[str, PromptVariant]:
    """The file text for `draft` and the variant it loads as; PromptFileError if invalid."""
    text = apply_draft(original, draft_data(draft, path))
    return text, variant_from_text(text, name=name, path=path)


# --- files with history -------------------------------------------------------------------


class PromptFiles:
    """Create, save, rename, delete and restore variant files under `prompts/`, with history."""

    def __init__(self, prompts_dir: Path, store: Store) -> None:
        self.root = prompts_dir
        self.store = store

    def path_of(self, name: str) -> Path:
        check_name(name)
        task, variant = name.split("/")
        for suffix in (".yaml", ".yml"):
            if (path := self.root / task / f"{variant}{suffix}").exists():
                return path
        return self.root / task / f"{variant}.yaml"

    def key(self, path: Path) -> str:
        """The file's name in the history: relative to the workspace, like git shows it."""
        return f"{self.root.name}/{path.relative_to(self.root).as_posix()}"

    def load(self, name: str) -> Loaded:
        """The file's text and fingerprint; PromptFileError (with the line) if not UTF-8."""
        path = self.path_of(name)
        try:
            return load_for_edit(path)
        except NotUTF8 as exc:
            raise PromptFileError(path, exc.detail, line=exc.line) from None

    def writable(self, name: str) -> Path:
        """The file of `name`, where writing it stays inside the workspace."""
        path = self.path_of(name)
        if (far := outside(path, self.root.parent)) is not None:
            raise PromptFileError(
                path,
                f"is a link to {far}, outside this workspace; PromptDeck writes only inside "
                "it: edit that file where it lives",
            )
        return path

    def save(self, name: str, text: str, expected: str, *, action: str = "save") -> str:
        """Validate and write `text`; the file must still be as loaded (`expected`)."""
        path = self.writable(name)
        variant_from_text(text, name=name, path=path)
        return save_versioned(self.store, path, self.key(path), name, text, expected, action=action)

    def create(self, name: str, text: str, *, action: str = "create") -> str:
        check_unchanged(self.writable(name), MISSING)  # never over an existing file
        return self.save(name, text, MISSING, action=action)

    def duplicate(self, source: str, new: str) -> str:
        return self.create(new, self.load(source).text, action=f"duplicate of {source}")

    def rename(self, old: str, new: str, expected: str) -> str:
        loaded = self.load(old)
        if loaded.fingerprint != expected:
            raise FileConflictError(loaded.path, disk_text=loaded.text)
        created = self.create(new, loaded.text, action=f"renamed from {old}")
        self.delete(old, expected, action=f"renamed to {new}")
        return created

    def delete(self, name: str, expected: str, *, action: str = "delete") -> None:
        """Remove the file; its last text stays in the history, so it can be restored."""
        path = self.writable(name)
        try:
            delete_versioned(self.store, path, self.key(path), name, expected, action=action)
        except NotUTF8 as exc:  # its text could not be kept for a restore
            raise PromptFileError(path, exc.detail, line=exc.line) from None

    def history(self, name: str) -> list[VersionRow]:
        return self.store.versions(self.key(self.path_of(name)))

    def deleted(self) -> list[VersionRow]:
        """The last version of every variant file that was deleted (or renamed away)."""
        last = self.store.last_versions(f"{self.root.name}/")
        return [v for v in last if not self.path_of(v["name"]).exists()]

    def restore(self, name: str, version_id: int, expected: str) -> str:
        found = self.store.version(version_id)
        if found is None or found["path"] != self.key(self.path_of(name)):
            raise PromptFileError(self.path_of(name), f"no saved version {version_id}")
        return self.save(name, found["content"], expected, action=f"restore of #{version_id}")

    def mark_baseline(self, name: str, names: list[str]) -> list[str]:
        """Tag `name` as its task's baseline and untag the task's other variants."""
        changed = []
        task = name.split("/")[0]
        for other in (n for n in names if n.split("/")[0] == task):
            loaded = self.load(other)
            draft = draft_from_text(loaded.text)
            tags = [t.strip() for t in draft.tags.split(",") if t.strip()]
            wanted = [t for t in tags if t != BASELINE_TAG] + (
                [BASELINE_TAG] if other == name else []
            )
            if wanted != tags:
                text, _ = render_draft(
                    replace(draft, tags=", ".join(wanted)),
                    loaded.text,
                    name=other,
                    path=loaded.path,
                )
                self.save(other, text, loaded.fingerprint, action="baseline tag")
                changed.append(other)
        return changed


def default_selection(library: PromptLibrary, limit: int = 3) -> list[str]:
    """The variants to compare when nothing is picked yet (Playground, Evaluate): the task of
    a variant tagged `baseline` (else the first task), the baseline first, then the task's
    other variants by name, up to `limit`. Adding a variant never pushes the baseline out."""
    names = sorted(library.variants)
    baselines = [n for n in names if BASELINE_TAG in library.variants[n].tags]
    if not names:
        return []
    task = (baselines or names)[0].split("/")[0]
    mine = [n for n in names if n.split("/")[0] == task]
    first = [n for n in baselines if n in mine][:1]
    return (first + [n for n in mine if n not in first])[:limit]


def baseline_of(library: PromptLibrary, chosen: list[str]) -> str | None:
    """The variant tagged `baseline` among `chosen`, else the first one."""
    tagged = [n for n in chosen if BASELINE_TAG in library.variants[n].tags]
    found = tagged or chosen
    return found[0] if found else None


def check_name(name: str) -> None:
    """The loader's rule (`prompts.name_problem`): a name typed here is one it would list."""
    problem = name_problem(name)
    if problem is not None:
        raise PromptFileError(f"prompts/{name}.yaml", problem)


# --- comparing two variants -----------------------------------------------------------------


@dataclass(frozen=True)
class FieldDiff:
    field: str
    a: str
    b: str

    @property
    def same(self) -> bool:
        return self.a == self.b

    def unified(self, a_name: str = "a", b_name: str = "b") -> str:
        lines = difflib.unified_diff(
            self.a.splitlines(), self.b.splitlines(), a_name, b_name, lineterm="", n=2
        )
        return "\n".join(list(lines)[2:])  # without the ---/+++ header


def variant_fields(variant: PromptVariant) -> dict[str, str]:
    """The comparable parts of a variant, each as text."""
    messages = "\n\n".join(f"[{m.role}]\n{m.content}" for m in variant.messages)
    return {
        "model": variant.model,
        "params": _dump_block(dict(variant.params)),
        "system": variant.system or "",
        "user": variant.user or "",
        "messages": messages,
        "checks": "\n".join(_check_line(check) for check in variant.checks),
        "fallback": variant.fallback or "",
        "tags": ", ".join(variant.tags),
        "description": variant.description,
    }


def _check_line(check: Check) -> str:
    value = list(check.value) if isinstance(check.value, tuple) else check.value
    parts = {"type": check.type, "value": value, "threshold": check.threshold}
    parts |= {"case_sensitive": check.case_sensitive, "name": check.name}
    shown = {
        k: v for k, v in parts.items() if v not in (None, "") and (k, v) != ("case_sensitive", True)
    }
    return yaml.safe_dump(shown, default_flow_style=True, sort_keys=False, width=4096).strip()


def diff_variants(a: PromptVariant, b: PromptVariant) -> list[FieldDiff]:
    """Field by field, the fields that either variant has."""
    left, right = variant_fields(a), variant_fields(b)
    return [FieldDiff(key, left[key], right[key]) for key in left if left[key] or right[key]]


def text_diff(a: str, b: str, a_name: str, b_name: str) -> str:
    """A unified diff of two file texts (for a save conflict: what is on disk vs yours)."""
    return "".join(
        difflib.unified_diff(a.splitlines(True), b.splitlines(True), a_name, b_name, n=2)
    )


DRAFT_FIELDS = tuple(f.name for f in fields(Draft))
