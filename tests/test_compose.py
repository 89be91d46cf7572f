"""compose.yaml and the Dockerfile agree with the app they deploy. (No Docker daemon runs
on the test machine: what the container runs, `scripts/start --server.address 0.0.0.0`
with PROMPTDECK_DATABASE_URL and [auth], is tested directly in tests/test_start.py and
tests/test_db_cli.py.)"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_the_app_service_uses_the_db_service_and_mounts_the_workspace() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    db, app = compose["services"]["db"], compose["services"]["app"]
    url = urlsplit(app["environment"]["PROMPTDECK_DATABASE_URL"])
    assert url.scheme == "postgresql" and url.hostname == "db" and url.port == 5432
    assert url.username == db["environment"]["POSTGRES_USER"]
    assert url.path == "/" + db["environment"]["POSTGRES_DB"]
    assert url.password == "${POSTGRES_PASSWORD}"  # the db service's, from the environment
    assert db["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in app["volumes"]}
    for inside in ("prompts", "datasets", "team.yaml", ".streamlit/secrets.toml"):
        assert mounts[f"/app/{inside}"] == f"./{inside}"
    assert (REPO / "prompts").is_dir() and (REPO / "datasets").is_dir()


def test_the_image_starts_through_scripts_start_on_every_interface() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["scripts/start", "--server.address", "0.0.0.0"' in dockerfile
    assert "WORKDIR /app" in dockerfile and "RUN scripts/setup requirements.txt" in dockerfile
    ignored = (REPO / ".dockerignore").read_text().split()
    for secret in (".env", ".streamlit/secrets.toml", ".promptdeck"):
        assert secret in ignored  # never baked into the image
