"""Keys saved "in .env" from Settings: the workspace's `.env`, and whether git could see it.

The one file the app writes a key to is the one the user chose for keys: `.env` in the
workspace (read by `model.secrets.Secrets`). The line that sets the variable is replaced
and every other line kept; the value is never returned, logged, put in an error or in the
store's file history. The repository's .gitignore lists `.env`; `dotenv_git_warning` says
when a workspace's git would pick the file up anyway.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from dotenv import dotenv_values

from promptdeck.errors import ConfigError
from promptdeck.model.secrets import check_key_name, check_key_value, mask_secret
from promptdeck.workspace.fileio import NotUTF8, atomic_write, decode_text, folder_lock


def save_key_in_dotenv(root: Path, name: str, value: str) -> tuple[str, str | None]:
    """Write `NAME='value'` into the workspace's `.env`: the line that sets NAME replaced
    (any other removed), every other line kept; a new `.env` is readable by its owner only.
    The value is never returned, logged or put in the file history: (the message, with it
    masked; a warning when git could pick the file up, else None)."""
    name, value = check_key_name(name), check_key_value(value)
    path = root / ".env"
    with folder_lock(root):
        try:
            raw: bytes | None = path.read_bytes()
        except FileNotFoundError:
            raw = None
        try:
            text = "" if raw is None else decode_text(raw, keep_bom=True)
        except NotUTF8 as exc:
            raise ConfigError(f"{path}: {exc}; the key was not saved") from None
        if raw is None:  # created private first: atomic_write keeps an existing file's mode
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        atomic_write(path, _with_dotenv_line(text, name, value))
    if dotenv_values(path).get(name) != value:
        raise ConfigError(f"{path}: {name} was written but does not read back; check the file")
    message = f"{name} saved in {path} ({mask_secret(value)})."
    if os.environ.get(name):
        message += (
            f" {name} is also set in the environment PromptDeck was started with, which "
            "comes first: restart PromptDeck without it for .env's key to be used."
        )
    return message, dotenv_git_warning(root)


def _with_dotenv_line(text: str, name: str, value: str) -> str:
    newline = "\r\n" if "\r\n" in text else "\n"
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")  # python-dotenv reads it back
    setting = re.compile(rf"\s*(export\s+)?{re.escape(name)}\s*=")
    out: list[str] = []
    done = False
    for line in text.splitlines(keepends=True):
        if (found := setting.match(line)) is None:
            out.append(line)
        elif not done:
            end = line[len(line.rstrip("\r\n")) :]
            out.append(f"{found.group(1) or ''}{name}='{escaped}'{end or newline}")
            done = True
    if not done:
        if out and not out[-1].endswith(("\n", "\r")):
            out[-1] += newline
        out.append(f"{name}='{escaped}'{newline}")
    return "".join(out)


def dotenv_git_warning(root: Path) -> str | None:
    """Why a key written to the workspace's `.env` could reach git, or None: the file is
    tracked (the key would be committed), or the workspace is a git work tree whose
    .gitignore does not cover `.env`. No git, or no repository: None."""

    def git(*args: str) -> int | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.returncode

    if git("rev-parse", "--is-inside-work-tree") != 0:
        return None
    if git("ls-files", "--error-unmatch", "--", ".env") == 0:
        return (
            ".env is tracked by git: a key in it would be committed with the next commit. "
            "Run `git rm --cached .env`, add `.env` to .gitignore, and keep keys there only "
            "after that (or set keys for this session)."
        )
    if git("check-ignore", "-q", "--", ".env") == 1:
        return (
            ".env is not in this repository's .gitignore: add a line `.env` to it, so that "
            "`git add .` never picks up the key."
        )
    return None
