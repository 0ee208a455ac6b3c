"""docker-compose.yml without a Docker engine (none runs here): it validates against the
Compose Specification's JSON Schema (vendored, dashboards/schema/compose-spec.json), and it
keeps the promises docs/deployment.md makes: auth on everywhere, nothing anonymous, pinned
images, health checks, named volumes for data, secrets only from .env, services built from
the Dockerfile that installs the wheel, broker queues sized as the shared broker config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "dashboards" / "schema" / "compose-spec.json"
BUILT = ("ingest", "worker", "console")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _conf(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition(" ")
            out.setdefault(key, []).append(value.strip())
    return out


def test_validates_against_the_compose_specification(compose: dict) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(compose)
    ]
    assert errors == []


def test_schema_catches_a_wrong_compose_file(compose: dict) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    broken = json.loads(json.dumps(compose))
    broken["services"]["ingest"]["restart_policy"] = "always"
    broken["services"]["grafana"]["ports"] = "3000:3000"
    assert len(list(jsonschema.Draft7Validator(schema).iter_errors(broken))) >= 2


def test_images_are_pinned(compose: dict) -> None:
    for name, svc in compose["services"].items():
        image = svc["image"]
        if name in BUILT:
            assert svc["build"] == "."
            assert image == "poise:local"
            continue
        _repo, _, tag = image.partition(":")
        assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to a release"


def test_every_service_has_a_health_check_and_restarts(compose: dict) -> None:
    for name, svc in compose["services"].items():
        assert svc["healthcheck"]["test"], name
        assert svc["restart"] == "unless-stopped", name
        for dep, cond in svc.get("depends_on", {}).items():
            assert cond == {"condition": "service_healthy"}, f"{name} -> {dep}"


def test_data_lives_in_named_volumes_and_bind_mounts_exist(compose: dict) -> None:
    named = set(compose["volumes"])
    for name, svc in compose["services"].items():
        for v in svc.get("volumes", []):
            source, _target = v.split(":")[:2]
            if source.startswith(("./", "${")):
                assert v.endswith(":ro"), f"{name}: bind mount {v} must be read-only"
                if source.startswith("./"):
                    assert (ROOT / source).exists(), f"{name}: {source} is not in the repository"
            else:
                assert source in named, f"{name}: {source} is not a named volume"
    used = {v.split(":")[0] for s in compose["services"].values() for v in s.get("volumes", [])}
    assert named <= used


def test_no_anonymous_access_anywhere(compose: dict) -> None:
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert grafana["GF_DASHBOARDS_MIN_REFRESH_INTERVAL"] == "1s"
    assert compose["services"]["influxdb"]["environment"]["INFLUXDB_HTTP_AUTH_ENABLED"] == "true"
    broker = _conf(ROOT / "deploy" / "compose" / "mosquitto.conf")
    assert broker["allow_anonymous"] == ["false"]
    assert broker["password_file"]
    assert broker["acl_file"]
    # the listener the host publishes (gateways) is TLS; the plain one is not published
    assert compose["services"]["mosquitto"]["ports"] == ["8883:8883"]
    assert broker["listener"] == ["1883", "8883"]
    assert broker["certfile"]
    assert broker["keyfile"]
    published = {name for name, s in compose["services"].items() if s.get("ports")}
    assert published == {"mosquitto", "proxy"}  # console and Grafana only behind TLS


def test_broker_queues_are_those_of_the_shared_broker_config() -> None:
    ours = _conf(ROOT / "deploy" / "compose" / "mosquitto.conf")
    shared = _conf(ROOT / "docs" / "deploy" / "mosquitto.conf")
    for key in ("max_queued_messages", "max_queued_bytes", "max_inflight_messages",
                "persistence", "autosave_interval"):  # fmt: skip
        assert ours[key] == shared[key], key


def test_secrets_come_from_env_and_nothing_secret_is_committed(compose: dict) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    # every ${VAR} the file uses is in .env.example or has a default
    for var in re.findall(r"\$\{(\w+)(:[-?][^}]*)?\}", text):
        assert var[0] in example or var[1].startswith(":-"), var[0]
    # every secret comes from one .env variable, and .env.example holds no value for it
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"environment"}, name
        assert example[secret["environment"]] == "", secret["environment"]
    # no service gets a password in its environment: only *_FILE paths to secrets
    for name, svc in compose["services"].items():
        for key, value in svc.get("environment", {}).items():
            if "PASSWORD" in key or "TOKEN" in key:
                assert key.endswith("_FILE"), f"{name}: {key}"
                assert str(value).startswith("/run/secrets/"), f"{name}: {key}"
    gitignore = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in gitignore
    assert "deploy/tls/" in gitignore
    dockerignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".env" in dockerignore


def test_services_run_the_installed_wheel(compose: dict) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "python -m build --wheel" in dockerfile
    assert re.search(r'pip install [^\n]*\\\n\s+"\$\(ls /dist/poise-\*\.whl\)\[', dockerfile)
    assert "pip install -e" not in dockerfile
    assert re.search(r"^USER poise$", dockerfile, re.M)
    for name in BUILT:
        svc = compose["services"][name]
        assert "pip" not in json.dumps(svc), name
        assert all(not v.startswith(".:") for v in svc.get("volumes", [])), name
        assert svc["read_only"] is True


@pytest.mark.parametrize("service", BUILT)
def test_service_commands_are_real_poise_commands(compose: dict, service: str) -> None:
    """Each service's command parses with poise's own command line (options and all)."""
    from poise.cli import build_parser

    parser = build_parser()
    command = compose["services"][service]["command"]
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    if command[0] not in choices:
        pytest.skip(f"poise {command[0]} is not in this tree yet")
    try:
        args = parser.parse_args(command)
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"{service}: poise {' '.join(command)} is refused ({exc.code})")
    assert args.func
