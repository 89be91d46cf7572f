"""team.yaml: strict parsing with file, line and field; who matches, as what."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptdeck.errors import ConfigError
from promptdeck.workspace.team import identity_of, load_team, parse_team_text, team_file

TEAM = """\
# who may use this workspace
editors: [alice@acme.com, "sub:google-oauth2|1234"]
viewers:
  - "*@acme.com"
  - Carol@Partner.example
  - "*@contractors.acme.com"
"""


@pytest.fixture
def team_path(tmp_path: Path) -> Path:
    path = tmp_path / "team.yaml"
    path.write_text(TEAM, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("identity", "role"),
    [
        ("alice@acme.com", "editor"),
        ("ALICE@Acme.COM", "editor"),  # addresses match case-insensitively
        ("bob@acme.com", "viewer"),  # by the domain pattern
        ("bob@ACME.com", "viewer"),
        ("carol@partner.example", "viewer"),  # listed as Carol@Partner.example
        ("dan@partner.example", None),  # an address is not a domain
        ("eve@sub.acme.com", None),  # "*@acme.com" is that domain only, not its subdomains
        ("eve@contractors.acme.com", "viewer"),
        ("mallory@acme.com.evil.example", None),
        ("acme.com", None),
        ("sub:google-oauth2|1234", "editor"),  # a subject, exactly
        ("sub:GOOGLE-OAUTH2|1234", None),  # subjects are not case-folded
        ("sub:alice@acme.com", None),  # a subject never matches an address or a domain
        ("", None),
        (None, None),
    ],
)
def test_who_is_what(team_path: Path, identity: str | None, role: str | None) -> None:
    team = load_team(team_path)
    assert team is not None
    assert team.role_of(identity) == role


def test_an_address_wins_over_its_domain(tmp_path: Path) -> None:
    team = parse_team_text(
        'editors: ["*@acme.com"]\nviewers: [bob@acme.com]\n', tmp_path / "team.yaml"
    )
    assert team.role_of("bob@acme.com") == "viewer"
    assert team.role_of("alice@acme.com") == "editor"


def test_no_file_is_none_not_an_empty_team(tmp_path: Path) -> None:
    assert load_team(tmp_path / "team.yaml") is None


def test_an_empty_list_is_allowed(tmp_path: Path) -> None:
    team = parse_team_text("editors: [alice@acme.com]\nviewers: []\n", tmp_path / "t.yaml")
    assert team.role_of("bob@acme.com") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "team.yaml: the team list is empty: list `editors:` and/or `viewers:`"),
        ("- alice@acme.com\n", "team.yaml: expected a mapping with `editors:` and/or `viewers:`"),
        (
            "editors: [a@acme.com]\nadmins: [b@acme.com]\n",
            "team.yaml, line 2: 'admins': unknown key: a team list has `editors` and `viewers`",
        ),
        (
            "editors: alice@acme.com\n",
            "team.yaml, line 1: 'editors': must be a list, e.g. [alice@acme.com, '*@acme.com']",
        ),
        ("viewers:\n", "team.yaml, line 1: 'viewers': must be a list"),
        (
            "editors:\n  - a@acme.com\n  - 12\n",
            "team.yaml, line 3: 'editors[1]': must be an email address, '*@domain' or 'sub:<id>'",
        ),
        (
            "viewers: [[a@acme.com]]\n",
            "team.yaml, line 1: 'viewers[0]': must be an email address",
        ),
        (
            "editors: [alice]\n",
            "team.yaml, line 1: 'editors[0]': 'alice' is not an email address, '*@domain' or "
            "'sub:<id>'",
        ),
        (
            'viewers: ["*"]\n',
            "team.yaml, line 1: 'viewers[0]': '*': a pattern is '*@domain'",
        ),
        (
            'viewers: ["*@*.acme.com"]\n',
            "team.yaml, line 1: 'viewers[0]': '*@*.acme.com': a pattern is '*@domain'",
        ),
        (
            'viewers: ["a@b@c"]\n',
            "team.yaml, line 1: 'viewers[0]': 'a@b@c' is not an email address",
        ),
        (
            'editors: ["sub:"]\n',
            "team.yaml, line 1: 'editors[0]': 'sub:' needs the subject after it",
        ),
        (
            "editors: [alice@acme.com]\nviewers:\n  - ALICE@acme.com\n",
            "team.yaml, line 3: 'viewers[0]': ALICE@acme.com is also in editors[0] (line 1): "
            "list it once, as the role it should have",
        ),
        (
            'editors: ["*@acme.com"]\nviewers: ["*@ACME.com"]\n',
            "team.yaml, line 2: 'viewers[0]': *@ACME.com is also in editors[0] (line 1)",
        ),
        (
            "editors: [a@acme.com]\neditors: [b@acme.com]\n",
            "team.yaml, line 2: invalid YAML: duplicate key 'editors' (first on line 1)",
        ),
        (
            "viewers: [*@acme.com]\n",
            "team.yaml, line 1: invalid YAML: expected alphabetic or numeric character, but "
            "found '@'; quote a domain pattern, \"*@acme.com\" (unquoted, YAML reads * as an "
            "alias)",
        ),
    ],
)
def test_a_broken_list_names_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_team_text(text, Path("team.yaml"))
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_field_error_carries_its_field() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_team_text("viewers: [ok@acme.com, nope]\n", Path("team.yaml"))
    assert caught.value.field == "viewers[1]"


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_bytes(b"editors: [\xff@acme.com]\n")
    with pytest.raises(ConfigError, match=r"team\.yaml: cannot read the team list"):
        load_team(path)


@pytest.mark.parametrize(
    ("claims", "identity"),
    [
        ({"sub": "123", "email": "Alice@Acme.com"}, "alice@acme.com"),
        ({"sub": "123", "email": "alice@acme.com", "email_verified": True}, "alice@acme.com"),
        # An address the provider has not verified could be anyone's: the subject is used.
        ({"sub": "123", "email": "alice@acme.com", "email_verified": False}, "sub:123"),
        ({"sub": "123"}, "sub:123"),  # a provider that sends no email
        ({"sub": "123", "email": "not an address"}, "sub:123"),
        ({"sub": "123", "email": ["alice@acme.com"]}, "sub:123"),
        ({"name": "nobody"}, None),
        ({"sub": ""}, None),
    ],
)
def test_identity_of_claims(claims: dict[str, object], identity: str | None) -> None:
    assert identity_of(claims) == identity


def test_the_team_file_is_in_the_workspace_unless_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMPTDECK_TEAM", raising=False)
    assert team_file(tmp_path) == tmp_path / "team.yaml"
    monkeypatch.setenv("PROMPTDECK_TEAM", str(tmp_path / "elsewhere.yaml"))
    assert team_file(tmp_path) == tmp_path / "elsewhere.yaml"
