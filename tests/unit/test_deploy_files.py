"""docker-compose.yml and the Dockerfile, validated by structure (no Docker engine here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("classifier", "policy", "router", "audit")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_infrastructure_every_service_and_a_publisher(compose: dict[str, Any]) -> None:
    assert {"kafka", "postgres", "topics", "migrate", *SERVICES, "publisher"} <= set(
        compose["services"]
    )


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_can_be_scaled(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]

    assert "container_name" not in service
    assert "ports" not in service


@pytest.mark.parametrize("name", [*SERVICES, "kafka", "postgres"])
def test_every_long_running_container_has_a_health_check(
    compose: dict[str, Any], name: str
) -> None:
    check = compose["services"][name]["healthcheck"]

    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert check["retries"] >= 3


@pytest.mark.parametrize("name", SERVICES)
def test_services_wait_for_healthy_kafka_and_created_topics(
    compose: dict[str, Any], name: str
) -> None:
    depends = compose["services"][name]["depends_on"]

    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["topics"]["condition"] == "service_completed_successfully"


def test_audit_waits_for_database_and_migrations(compose: dict[str, Any]) -> None:
    depends = compose["services"]["audit"]["depends_on"]

    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", [*SERVICES, "topics", "migrate", "publisher"])
def test_every_built_service_uses_the_repo_dockerfile_with_its_own_extra(
    compose: dict[str, Any], name: str
) -> None:
    build = compose["services"][name]["build"]

    assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    assert build["args"]["SERVICE"] in (*SERVICES, "cli")
    if name in SERVICES:
        assert build["args"]["SERVICE"] == name


def test_no_secret_is_written_into_the_compose_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()

    for line in text.splitlines():
        if re.search(r"PASSWORD|://\w+:[^/@]*@", line) and not line.lstrip().startswith("#"):
            assert "${TRIAGEFLOW_DB_PASSWORD:?" in line, line


def test_dockerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    text = (ROOT / "deploy/docker/Dockerfile").read_text()

    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2
    assert re.search(r"^USER 10001", text, re.MULTILINE)
    assert "HEALTHCHECK" in text
    assert re.search(r'^ENTRYPOINT \["', text, re.MULTILINE), "exec form, so SIGTERM reaches python"
    assert '--extra "${SERVICE}"' in text


def test_service_extras_keep_ml_libraries_out_of_the_router_image() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    heavy = ("scikit-learn", "numpy", "openai")

    assert not [d for d in extras["router"] if d.startswith(heavy)]
    assert [d for d in extras["classifier"] if d.startswith("scikit-learn")]
