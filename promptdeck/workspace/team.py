"""The team list: who may use a workspace served with sign-in, and as what.

`team.yaml` in the workspace (or the file named by PROMPTDECK_TEAM):

    editors: [alice@acme.com]
    viewers: ["*@acme.com", "sub:1234567890"]

- An **editor** may do everything; a **viewer** reads results and reports (no runs, no
  saves, no connection tests, no reviews).
- An entry is an email address (matched case-insensitively), `*@domain` (every address of
  that domain, not of its subdomains), or `sub:<id>`: the OIDC subject, matched exactly,
  for a provider that sends no email.
- The most specific entry wins: an address over a domain pattern, so `editors: ["*@acme.com"]`
  with `viewers: [bob@acme.com]` makes Bob a viewer. The same address (or domain) in both
  lists is an error, not a guess.
- Strict: an unknown key, a value that is not a list, or an entry that is none of the above
  is a ConfigError naming the file, the line and the field (`viewers[1]`).

A signed-in user's identity (`identity_of`) is the email of their identity token, unless
the provider says it is unverified (`email_verified: false`); without a usable email it is
`sub:<sub>`, which only an exact `sub:` entry matches.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from promptdeck.errors import ConfigError
from promptdeck.workspace.fileio import read_text
from promptdeck.workspace.yamlfile import YAMLProblem, parse_yaml_document

Role = Literal["editor", "viewer"]
LISTS: dict[str, Role] = {"editors": "editor", "viewers": "viewer"}
SUB_PREFIX = "sub:"

_ADDRESS = re.compile(r"[^@\s*]+@[^@\s*]+")
_DOMAIN = re.compile(r"\*@([^@\s*]+)")
_UNQUOTED = re.compile(r"(^|[\[,\s-])\*@")  # `[*@acme.com]`: YAML takes `*` for an alias


@dataclass(frozen=True)
class Team:
    """A parsed team list: exact identities (lower-cased addresses, `sub:` ids as written)
    and domains, each with its role."""

    path: Path
    members: Mapping[str, Role]
    domains: Mapping[str, Role]

    def role_of(self, identity: str | None) -> Role | None:
        """The role of a signed-in identity (from `identity_of`); None: not on the list."""
        if not identity:
            return None
        if identity.startswith(SUB_PREFIX):
            return self.members.get(identity)
        address = identity.lower()
        if address in self.members:
            return self.members[address]
        return self.domains.get(address.rpartition("@")[2]) if "@" in address else None


def identity_of(claims: Mapping[str, Any]) -> str | None:
    """Who a signed-in user is, for the team list and for `author` in the store: the email
    (lower-cased), or `sub:<sub>` when the provider sent no email or marked it unverified;
    None when it sent neither."""
    email = claims.get("email")
    verified = claims.get("email_verified") is not False
    if isinstance(email, str) and _ADDRESS.fullmatch(email.strip()) and verified:
        return email.strip().lower()
    sub = claims.get("sub")
    return f"{SUB_PREFIX}{sub}" if isinstance(sub, str) and sub else None


def team_file(root: Path) -> Path:
    """The workspace's team list: PROMPTDECK_TEAM if set, else `team.yaml` in `root`."""
    named = os.environ.get("PROMPTDECK_TEAM")
    return Path(named) if named else root / "team.yaml"


def load_team(path: Path) -> Team | None:
    """The team list in `path`; None when there is no such file."""
    if not path.is_file():
        return None
    try:
        text = read_text(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the team list: {exc}") from None
    return parse_team_text(text, path)


def parse_team_text(text: str, path: Path) -> Team:
    """team.yaml's text (as `path`), checked whole."""
    try:
        node, data = parse_yaml_document(text)
    except YAMLProblem as exc:
        lines = text.splitlines()
        line = lines[exc.line - 1] if exc.line and exc.line <= len(lines) else ""
        hint = '; quote a domain pattern, "*@acme.com" (unquoted, YAML reads * as an alias)'
        where = f", line {exc.line}" if exc.line else ""
        detail = exc.detail + (hint if _UNQUOTED.search(line) else "")
        raise ConfigError(f"{path}{where}: {detail}") from None
    if data is None:
        raise ConfigError(f"{path}: the team list is empty: list `editors:` and/or `viewers:`")
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}: expected a mapping with `editors:` and/or `viewers:`")
    members: dict[str, Role] = {}
    domains: dict[str, Role] = {}
    seen: dict[str, tuple[str, int]] = {}  # entry -> where it was first listed
    for key_node, value_node in node.value:
        key = str(key_node.value)
        line = key_node.start_mark.line + 1
        if key not in LISTS:
            raise _error(path, line, key, "unknown key: a team list has `editors` and `viewers`")
        if not isinstance(value_node, yaml.SequenceNode):
            raise _error(path, line, key, "must be a list, e.g. [alice@acme.com, '*@acme.com']")
        for index, item in enumerate(value_node.value):
            field, item_line = f"{key}[{index}]", item.start_mark.line + 1
            raw = data[key][index]
            try:
                entry = _entry(raw)
            except ValueError as exc:
                raise _error(path, item_line, field, str(exc)) from None
            first = seen.setdefault(entry, (field, item_line))
            if first[0].split("[")[0] != key:
                raise _error(
                    path, item_line, field,
                    f"{raw} is also in {first[0]} (line {first[1]}): list it once, as the "
                    "role it should have",
                )  # fmt: skip
            if entry.startswith("*@"):
                domains[entry[2:]] = LISTS[key]
            else:
                members[entry] = LISTS[key]
    return Team(path, members, domains)


def _entry(raw: object) -> str:
    """An entry as it is matched (a lower-cased address or `*@domain`, or `sub:<id>`);
    ValueError: what is wrong with it."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("must be an email address, '*@domain' or 'sub:<id>'")
    text = raw.strip()
    if text.startswith(SUB_PREFIX):
        if len(text) == len(SUB_PREFIX):
            raise ValueError("'sub:' needs the subject after it, e.g. sub:1234567890")
        return text
    if _ADDRESS.fullmatch(text) or _DOMAIN.fullmatch(text):
        return text.lower()
    if text.startswith("*"):
        raise ValueError(f"{text!r}: a pattern is '*@domain' (every address of one domain)")
    raise ValueError(f"{text!r} is not an email address, '*@domain' or 'sub:<id>'")


def _error(path: Path, line: int, field: str, message: str) -> ConfigError:
    return ConfigError(f"{path}, line {line}: '{field}': {message}", field=field)
