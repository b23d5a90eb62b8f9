"""docker-compose.yml, validated without a Docker engine: against the Compose
Specification's JSON schema (vendored: tests/ops/compose-spec.md), then for what makes it
run — images or builds, KRaft, environment, mounts, ports, health, the scrape target."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from fueltrace.settings import Settings
from tests.ops.tools import ROOT

SCHEMA = Path(__file__).with_name("compose-spec.json")
SCHEMA_SHA256 = "46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496"
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution: ``${X}``, ``${X:-default}``, ``${X-default}``, ``$$``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(3)
        return env.get(name) or (m.group(2) if m.group(2) is not None else "")

    return VARIABLE.sub(one, value)


def raw() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The file as `docker compose config` would see it in a clean shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FUELTRACE_", "KAFKA_"))}
    resolved: dict[str, Any] = interpolate(raw(), env)
    return resolved


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_the_vendored_schema_is_the_one_cited() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=str)
    assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors] == []


def test_the_schema_catches_a_mistake(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["pipeline"]["depends_on"] = {"kafka": {"condition": "when_it_feels_like"}}
    broken["services"]["pipeline"]["restart_policy"] = "always"
    assert len(list(jsonschema.Draft7Validator(schema).iter_errors(broken))) >= 2


def test_every_service_has_a_pinned_image_or_the_repo_build(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            assert service["build"] in (".", {"context": "."}), name
            assert (ROOT / "Dockerfile").is_file()
            continue
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+[\w.-]*", image), f"{name}: pin {image}"


def test_kafka_runs_in_kraft_mode_from_the_official_image(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = environment(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in k for k in env)
    listeners = dict(x.split("://") for x in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(x.split("://") for x in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(x.split(":") for x in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) == set(protocols)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] not in advertised
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"1@kafka:{listeners['CONTROLLER'][1:]}"
    pipeline_bootstrap = environment(compose["services"]["pipeline"])["FUELTRACE_BOOTSTRAP"]
    assert pipeline_bootstrap == advertised[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # the topics service creates them


def test_topics_are_created_before_the_pipeline_starts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["topics"]["command"] == ["topics"]
    assert services["pipeline"]["depends_on"]["topics"] == {
        "condition": "service_completed_successfully"}
    assert services["pipeline"]["depends_on"]["kafka"] == {"condition": "service_healthy"}
    partitions = {environment(services[s])["FUELTRACE_PARTITIONS"] for s in ("topics", "pipeline")}
    assert len(partitions) == 1


def test_fueltrace_settings_exist(compose: dict[str, Any]) -> None:
    known = {f"FUELTRACE_{n.upper()}" for n in Settings.model_fields}
    for name, service in compose["services"].items():
        unknown = [k for k in environment(service) if k.startswith("FUELTRACE_") and k not in known]
        assert unknown == [], name
        given = {k.removeprefix("FUELTRACE_").lower(): v
                 for k, v in environment(service).items() if k.startswith("FUELTRACE_")}
        Settings(**given)  # validates, together: some settings are checked against others


def test_mounted_files_exist_and_volumes_are_declared(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} not declared"


def test_published_ports_are_unique(compose: dict[str, Any]) -> None:
    published = [str(p).split(":")[0] for s in compose["services"].values()
                 for p in s.get("ports", [])]  # fmt: skip
    assert len(published) == len(set(published))


def test_long_running_services_have_health_checks(compose: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name, service in compose["services"].items():
        if service.get("restart") == "no":
            continue
        built_healthy = "build" in service and "HEALTHCHECK" in dockerfile
        assert "healthcheck" in service or built_healthy, name


def test_prometheus_scrapes_the_pipeline_and_loads_the_rules(compose: dict[str, Any]) -> None:
    services = compose["services"]
    config = yaml.safe_load((ROOT / "dashboards" / "prometheus.yml").read_text())
    mounts = dict(m.split(":")[:2] for m in services["prometheus"]["volumes"])
    config_dir = Path(mounts["./dashboards/prometheus.yml"]).parent
    for rule_file in config["rule_files"]:
        assert f"./dashboards/{rule_file}" in mounts
        assert mounts[f"./dashboards/{rule_file}"] == str(config_dir / rule_file)
    (job,) = config["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host == "pipeline"
    command = services["pipeline"]["command"]
    assert command[0] == "serve" and command[command.index("--port") + 1] == port
    (alertmanager,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanager.split(":")[0] in services


def test_alertmanager_routes_every_severity_to_a_receiver() -> None:
    config = yaml.safe_load((ROOT / "dashboards" / "alertmanager.yml").read_text())
    receivers = {r["name"] for r in config["receivers"]}
    routes = [config["route"], *config["route"].get("routes", [])]
    assert {r["receiver"] for r in routes} <= receivers
    rules = yaml.safe_load((ROOT / "dashboards" / "alerts.yml").read_text())
    severities = {r["labels"]["severity"] for g in rules["groups"] for r in g["rules"]}
    assert severities == {"page", "ticket"}
    assert any('severity="page"' in m for r in routes for m in r.get("matchers", []))
