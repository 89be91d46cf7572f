"""Where things live: the workspace is the current directory (or an explicit root).

It holds `prompts/`, `datasets/`, `providers.yaml` (or the file named by
PROMPTDECK_PROVIDERS) and the store under PROMPTDECK_HOME (default `.promptdeck/`), or on the
PostgreSQL server that PROMPTDECK_DATABASE_URL names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def from_env(cls, root: Path | str | None = None) -> Workspace:
        # Relative paths keep messages short: "prompts/support/x.yaml, line 3".
        return cls(Path(root) if root is not None else Path("."))

    @property
    def prompts_dir(self) -> Path:
        return self.root / "prompts"

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def providers_file(self) -> Path:
        named = os.environ.get("PROMPTDECK_PROVIDERS")
        return Path(named) if named else self.root / "providers.yaml"

    @property
    def home(self) -> Path:
        named = os.environ.get("PROMPTDECK_HOME")
        return Path(named) if named else self.root / ".promptdeck"

    @property
    def store_path(self) -> Path:
        return self.home / "promptdeck.sqlite"

    @property
    def store_target(self) -> str:
        """The store: PROMPTDECK_DATABASE_URL (a team's PostgreSQL) if set, else the SQLite
        file under the home. (No file is created under the home with a database URL.)"""
        return os.environ.get("PROMPTDECK_DATABASE_URL", "").strip() or str(self.store_path)
