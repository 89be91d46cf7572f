"""`python -m promptdeck.serve APP [STREAMLIT OPTIONS] [--unsafe-no-auth]`: start
`streamlit run` with these options, unless it would serve other computers without sign-in.

`scripts/start` ends with it. Refused (exit 2, and a message that says how to turn sign-in
on): an address other than loopback (`--server.address 0.0.0.0`, STREAMLIT_SERVER_ADDRESS,
config.toml) while the secrets have no complete `[auth]` section. `--unsafe-no-auth` (a
network you trust) is taken out of the options and starts it anyway, with a warning on
every page. The decision is `workspace.serving`'s, which the page frame checks again.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from promptdeck.errors import ConfigError
from promptdeck.workspace.serving import (
    UNSAFE_ENV,
    exposure_refusal,
    is_loopback,
    missing_auth_keys,
    read_auth_section,
    served_address,
    split_unsafe,
    streamlit_files,
)
from promptdeck.workspace.team import team_file

Exec = Callable[[str, list[str], Mapping[str, str]], object]


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    execute: Exec = os.execve,
) -> int:
    """Check, then replace this process with Streamlit (`execute`); 2 when refused."""
    args, unsafe = split_unsafe(list(sys.argv[1:] if argv is None else argv))
    env = dict(os.environ if env is None else env)
    script = Path(args[0]) if args and not args[0].startswith("-") else None
    cwd, home = Path.cwd(), Path.home()
    address = served_address(args, env, streamlit_files("config.toml", cwd, home, script))
    try:
        auth = read_auth_section(streamlit_files("secrets.toml", cwd, home, script))
    except ConfigError as exc:
        print(f"PromptDeck: {exc}", file=sys.stderr)
        return 2
    missing = missing_auth_keys(auth)
    refusal = exposure_refusal(address, missing, unsafe)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    if missing == [] and not is_loopback(address) and not team_file(cwd).is_file():
        print(
            f"PromptDeck: sign-in is on, but {team_file(cwd)} does not exist: everyone who "
            "signs in is refused until it lists them (editors: [...], viewers: [...]).",
            file=sys.stderr,
        )
    env.pop(UNSAFE_ENV, None)  # only this start's flag counts
    if unsafe:
        env[UNSAFE_ENV] = "1"
    command = [sys.executable, "-m", "streamlit", "run", *args]
    execute(sys.executable, command, env)
    return 0  # reached only when `execute` is not os.execve (tests)


if __name__ == "__main__":
    sys.exit(main())
