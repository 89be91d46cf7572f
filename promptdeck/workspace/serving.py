"""Serving a workspace beyond this computer: is sign-in configured, which address will
Streamlit listen on, and may it start.

PromptDeck calls models with the workspace's keys and writes its files, so a server that
other computers can reach needs sign-in: an `[auth]` section in Streamlit's secrets (the
five keys of AUTH_KEYS, for `st.login()`'s default provider) and a team list
(`workspace.team`). Without it, only an explicit `--unsafe-no-auth` (a network you trust)
starts such a server, and every page then says who can use it.

Streamlit reads its files in this order, a later one winning (`streamlit_files`):
`~/.streamlit/`, the working directory's `.streamlit/`, the app script's `.streamlit/`.
A later secrets file's `[auth]` replaces an earlier one's whole (Streamlit merges the
top-level tables only). The address: `--server.address` > STREAMLIT_SERVER_ADDRESS >
config.toml `[server] address`; unset, Streamlit listens on every interface.

`scripts/start` runs `promptdeck.serve`, which decides with `start_refusal` before it
starts Streamlit; the page frame (`ui.frame`) decides again with the same functions, for
a server started by hand.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from promptdeck.errors import ConfigError

UNSAFE_FLAG = "--unsafe-no-auth"
UNSAFE_ENV = "PROMPTDECK_UNSAFE_NO_AUTH"  # set by promptdeck.serve when the flag was given
AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
ADDRESS_OPTION = "--server.address"
ADDRESS_ENV = "STREAMLIT_SERVER_ADDRESS"
README_SECTION = 'README, "Run it for your team"'


def is_loopback(address: str | None) -> bool:
    """Does a server bound to `address` serve this computer only? Unset or empty: Streamlit
    binds every interface; a Unix socket is taken as exposed (it is served through a proxy)."""
    if not address:
        return False
    name = address.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a host name, "unix://...": reachable from elsewhere, as far as we know
        return False


def streamlit_files(name: str, cwd: Path, home: Path, script: Path | None) -> list[Path]:
    """Where Streamlit reads `name` (secrets.toml, config.toml), first to last."""
    files = [home / ".streamlit" / name, cwd / ".streamlit" / name]
    if script is not None:
        files.append(script.resolve().parent / ".streamlit" / name)
    unique: list[Path] = []
    for path in files:
        if all(path.resolve() != seen.resolve() for seen in unique):
            unique.append(path)
    return unique


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None


def read_auth_section(secrets_files: Sequence[Path]) -> Mapping[str, Any] | None:
    """The `[auth]` section Streamlit will use (the last file that has one); None: none."""
    section: Mapping[str, Any] | None = None
    for path in secrets_files:
        found = _read_toml(path).get("auth")
        if found is not None:
            section = found if isinstance(found, Mapping) else {}
    return section


def missing_auth_keys(section: Mapping[str, Any] | None) -> list[str] | None:
    """None: sign-in is not configured at all; []: it is; else the keys `[auth]` lacks."""
    if section is None:
        return None
    return [key for key in AUTH_KEYS if not str(section.get(key) or "").strip()]


def config_address(config_files: Sequence[Path]) -> str | None:
    """`[server] address` of Streamlit's config files (the last one that sets it)."""
    address = None
    for path in config_files:
        server = _read_toml(path).get("server")
        if isinstance(server, Mapping) and server.get("address") is not None:
            address = str(server["address"])
    return address


def served_address(
    args: Sequence[str], env: Mapping[str, str], config_files: Sequence[Path]
) -> str | None:
    """The address `streamlit run ARGS` will listen on (None: every interface)."""
    address = None
    options = list(args[: args.index("--")] if "--" in args else args)  # the rest is the app's
    for i, arg in enumerate(options):
        if arg == ADDRESS_OPTION and i + 1 < len(options):
            address = options[i + 1]
        elif arg.startswith(ADDRESS_OPTION + "="):
            address = arg.partition("=")[2]
    if address is not None:
        return address
    return env.get(ADDRESS_ENV) or config_address(config_files)


def split_unsafe(args: Sequence[str]) -> tuple[list[str], bool]:
    """The arguments without `--unsafe-no-auth`, and whether it was given (before `--`)."""
    end = args.index("--") if "--" in args else len(args)
    kept = [a for a in args[:end] if a != UNSAFE_FLAG]
    return kept + list(args[end:]), len(kept) < end


def exposure_refusal(address: str | None, missing: list[str] | None, unsafe: bool) -> str | None:
    """Why a server on `address` must not serve pages (None: it may). `missing`: from
    `missing_auth_keys`; `unsafe`: --unsafe-no-auth was given."""
    if is_loopback(address) or missing == [] or unsafe:
        return None
    where = f"on {address}" if address else "on every network interface"
    why = (
        "sign-in is not configured"
        if missing is None
        else f"the [auth] section of .streamlit/secrets.toml lacks {', '.join(missing)}"
    )
    return (
        f"PromptDeck will not serve {where}: {why}, so anyone who can reach this computer "
        "could use your API keys and change your files.\n"
        "To serve your team, turn on sign-in: add an [auth] section to the workspace's "
        f".streamlit/secrets.toml with {', '.join(AUTH_KEYS)} (your OIDC provider's "
        "values), and list who may use it, as editors or viewers, in team.yaml "
        f"({README_SECTION}).\n"
        f"On a network you trust, {UNSAFE_FLAG} starts it without sign-in anyway; every "
        "page then says that anyone on the network can use your keys."
    )
