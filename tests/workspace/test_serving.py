"""Serving beyond this computer: the address Streamlit will use, whether sign-in is
configured, and the start decision (`promptdeck.serve`, with its exec replaced)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from promptdeck import serve
from promptdeck.errors import ConfigError
from promptdeck.workspace.serving import (
    AUTH_KEYS,
    UNSAFE_ENV,
    exposure_refusal,
    is_loopback,
    missing_auth_keys,
    read_auth_section,
    served_address,
    split_unsafe,
    streamlit_files,
)

AUTH = "\n".join(["[auth]", *(f'{key} = "x"' for key in AUTH_KEYS)]) + "\n"


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("laptop.lan", False),
        ("unix:///tmp/promptdeck.sock", False),
        ("", False),  # unset: Streamlit listens on every interface
        (None, False),
    ],
)
def test_is_loopback(address: str | None, loopback: bool) -> None:
    assert is_loopback(address) is loopback


@pytest.mark.parametrize(
    ("args", "env", "config", "address"),
    [
        (["app.py"], {}, None, None),
        (["app.py"], {}, "127.0.0.1", "127.0.0.1"),
        (["app.py"], {"STREAMLIT_SERVER_ADDRESS": "0.0.0.0"}, "127.0.0.1", "0.0.0.0"),
        (["app.py", "--server.address", "0.0.0.0"], {}, "127.0.0.1", "0.0.0.0"),
        (["app.py", "--server.address=::"], {"STREAMLIT_SERVER_ADDRESS": "127.0.0.1"}, None, "::"),
        (["app.py", "--server.address", "1.2.3.4", "--server.address=::1"], {}, None, "::1"),
        # after "--" the arguments are the app's, not Streamlit's
        (["app.py", "--", "--server.address", "0.0.0.0"], {}, "127.0.0.1", "127.0.0.1"),
    ],
)
def test_served_address_follows_streamlits_precedence(
    tmp_path: Path, args: list[str], env: dict[str, str], config: str | None, address: str | None
) -> None:
    toml = tmp_path / "config.toml"
    if config is not None:
        toml.write_text(f'[server]\naddress = "{config}"\n')
    assert served_address(args, env, [toml]) == address


def test_a_later_config_file_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "home.toml", tmp_path / "project.toml"
    first.write_text('[server]\naddress = "0.0.0.0"\n')
    second.write_text('[server]\naddress = "127.0.0.1"\n')
    assert served_address([], {}, [first, second]) == "127.0.0.1"
    assert served_address([], {}, [second, first]) == "0.0.0.0"


def test_split_unsafe() -> None:
    assert split_unsafe(["app.py", "--unsafe-no-auth", "--server.port", "1"]) == (
        ["app.py", "--server.port", "1"],
        True,
    )
    assert split_unsafe(["app.py"]) == (["app.py"], False)
    assert split_unsafe(["app.py", "--", "--unsafe-no-auth"]) == (
        ["app.py", "--", "--unsafe-no-auth"],
        False,
    )


def test_auth_section_of_the_last_file_that_has_one(tmp_path: Path) -> None:
    home, project = tmp_path / "home.toml", tmp_path / "project.toml"
    home.write_text(AUTH)
    project.write_text('OPENAI_API_KEY = "sk-x"\n')
    assert missing_auth_keys(read_auth_section([home, project])) == []
    project.write_text('[auth]\nredirect_uri = "http://x/oauth2callback"\n')  # replaces it whole
    assert missing_auth_keys(read_auth_section([home, project])) == [
        "cookie_secret",
        "client_id",
        "client_secret",
        "server_metadata_url",
    ]
    assert read_auth_section([tmp_path / "none.toml"]) is None
    assert missing_auth_keys(None) is None


def test_a_broken_secrets_file_is_an_error_not_no_sign_in(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text("[auth\n")
    with pytest.raises(ConfigError, match=r"secrets\.toml: cannot read it"):
        read_auth_section([path])


def test_streamlit_files_in_streamlits_order(tmp_path: Path) -> None:
    cwd, home = tmp_path / "ws", tmp_path / "home"
    assert streamlit_files("secrets.toml", cwd, home, None) == [
        home / ".streamlit" / "secrets.toml",
        cwd / ".streamlit" / "secrets.toml",
    ]
    elsewhere = tmp_path / "repo" / "app.py"
    assert streamlit_files("secrets.toml", cwd, home, elsewhere)[-1] == (
        tmp_path / "repo" / ".streamlit" / "secrets.toml"
    )
    assert len(streamlit_files("x.toml", cwd, home, cwd / "app.py")) == 2  # not twice


@pytest.mark.parametrize(
    ("address", "missing", "unsafe", "refused"),
    [
        ("127.0.0.1", None, False, False),
        ("0.0.0.0", None, False, True),
        (None, None, False, True),
        ("0.0.0.0", ["client_secret"], False, True),
        ("0.0.0.0", [], False, False),
        ("0.0.0.0", None, True, False),
    ],
)
def test_exposure_refusal(
    address: str | None, missing: list[str] | None, unsafe: bool, refused: bool
) -> None:
    assert (exposure_refusal(address, missing, unsafe) is not None) is refused


def test_the_refusal_says_how_to_turn_sign_in_on() -> None:
    said = exposure_refusal("0.0.0.0", ["client_secret"], False)
    assert said is not None
    assert "the [auth] section of .streamlit/secrets.toml lacks client_secret" in said
    assert ", ".join(AUTH_KEYS) in said
    assert "team.yaml" in said and "Run it for your team" in said and "--unsafe-no-auth" in said


class Exec:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], Mapping[str, str]]] = []

    def __call__(self, path: str, argv: list[str], env: Mapping[str, str]) -> None:
        self.calls.append((path, argv, dict(env)))


@pytest.fixture
def where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace as the working directory, and a home of its own."""
    (tmp_path / "home").mkdir()
    (tmp_path / "ws").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "ws")
    return tmp_path


def test_serve_refuses_without_starting(where: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = Exec()
    assert serve.main(["app.py", "--server.address", "0.0.0.0"], {}, run) == 2
    assert run.calls == []
    assert "PromptDeck will not serve on 0.0.0.0" in capsys.readouterr().err


def test_serve_starts_streamlit_without_the_flag(where: Path) -> None:
    run = Exec()
    argv = ["app.py", "--server.address", "0.0.0.0", "--unsafe-no-auth", "--server.port", "9"]
    assert serve.main(argv, {"PATH": "/bin"}, run) == 0
    [(_, command, env)] = run.calls
    assert command[1:] == ["-m", "streamlit", "run", "app.py", "--server.address", "0.0.0.0",
                           "--server.port", "9"]  # fmt: skip
    assert env == {"PATH": "/bin", UNSAFE_ENV: "1"}


def test_serve_drops_an_inherited_unsafe_setting(where: Path) -> None:
    run = Exec()
    assert (
        serve.main(["app.py"], {"STREAMLIT_SERVER_ADDRESS": "127.0.0.1", UNSAFE_ENV: "1"}, run) == 0
    )
    assert UNSAFE_ENV not in run.calls[0][2]


def test_serve_with_sign_in_in_the_home_secrets(
    where: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (where / "home" / ".streamlit").mkdir()
    (where / "home" / ".streamlit" / "secrets.toml").write_text(AUTH)
    run = Exec()
    assert serve.main(["app.py", "--server.address=0.0.0.0"], {}, run) == 0
    assert len(run.calls) == 1
    assert "team.yaml does not exist: everyone who signs in is refused" in capsys.readouterr().err
