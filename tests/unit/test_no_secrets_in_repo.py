"""No secret in the repository or the images: every tracked file is scanned.

Passwords and keys are generated at run time (deploy/local/infra.sh writes them, with mode
0600, into the git-ignored state dir) or come from the environment. The one password that may
appear is the documented local development default (`triageflow:triageflow`, README and
deploy/local/README.md), listed below with the few placeholders of tests and docs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# Split so that this file does not match its own pattern.
PRIVATE_KEY = re.compile("-----BEGIN " + r"(?:[A-Z0-9]+ )*PRIVATE KEY-----")
# Shapes of well-known credentials (cloud keys, tokens).
TOKENS = re.compile(
    r"\b(?:AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36}|sk-[A-Za-z0-9_-]{32,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{20})\b"
)
# user:password@ in a URL.
URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/:@\"'`]+:([^\s@\"'`/]+)@")
# password = "<value>" (or : / JSON / YAML), the value quoted.
QUOTED_SECRET = re.compile(
    r"(?i)(?:password|passwd|secret|api_?key|token)[\"']?\s*[:=]\s*[\"']([^\"'\s]+)[\"']"
)
# NAME_PASSWORD=<value> (shell and env files: upper-case names), the value unquoted.
ASSIGNED_SECRET = re.compile(
    r"\b[A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|API_KEY|TOKEN)=([^\s\"'$;)`]+)"
)

ALLOWED_VALUES = {
    "triageflow": "the documented local development password (README, deploy/local)",
    "p": "unit test URLs (tests/unit/test_audit_migrate.py)",
    "p%40ss": "unit test URLs (tests/unit/test_audit_migrate.py)",
    "placeholder": "manifest placeholder (tests/unit/test_k8s_manifests.py)",
    "...": "elided value in docs",
    "triageflow-ca": "the name of a Kubernetes Secret, not a secret",
    "not-the-password": "the deliberately wrong password of a security test",
    "test-key": "fake API key of the LLM backend's unit tests",
    "k": "fake API key of the LLM backend's unit tests",
}
# Files that hold keys by nature; none may be tracked.
KEY_FILE_SUFFIXES = (".key", ".pem", ".p12", ".pfx", ".jks", ".keystore", ".truststore")


def _placeholder(value: str) -> bool:
    """A reference to a secret, not a secret: a variable, template or elision."""
    return value.startswith(("$", "@", "<", "{", "%", "...")) or value.endswith("...")


@cache
def _tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout: no tracked files to scan")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout
    return [REPO_ROOT / name for name in listed.decode().split("\0") if name]


def _text_files() -> list[tuple[Path, str]]:
    files = []
    for path in _tracked_files():
        if path.name == "uv.lock" or not path.is_file():
            continue  # uv.lock: hashes of packages, nothing secret, and large
        data = path.read_bytes()
        if b"\0" not in data[:8192]:
            files.append((path, data.decode(errors="replace")))
    return files


def _findings(text: str) -> list[str]:
    found = [match.group(0) for match in PRIVATE_KEY.finditer(text)]
    found += [match.group(0) for match in TOKENS.finditer(text)]
    for pattern in (URL_CREDENTIALS, QUOTED_SECRET, ASSIGNED_SECRET):
        for match in pattern.finditer(text):
            value = match.group(1)
            if value not in ALLOWED_VALUES and not _placeholder(value):
                found.append(match.group(0))
    return found


def test_no_tracked_file_holds_a_private_key_a_token_or_a_password() -> None:
    findings = {
        str(path.relative_to(REPO_ROOT)): found
        for path, text in _text_files()
        if (found := _findings(text))
    }

    assert findings == {}


def test_no_key_or_keystore_file_is_tracked() -> None:
    tracked = [p.relative_to(REPO_ROOT) for p in _tracked_files()]

    assert [p for p in tracked if p.name.endswith(KEY_FILE_SUFFIXES)] == []


def test_the_state_dir_with_the_generated_secrets_is_never_committed() -> None:
    state_files = [".local/tls/ca.key", ".local/kafka-secure/credentials"]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *state_files],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert ignored.stdout.split() == state_files
    assert not [p for p in _tracked_files() if ".local" in p.relative_to(REPO_ROOT).parts]


def test_images_copy_only_code_and_lock_files() -> None:
    dockerfile = (REPO_ROOT / "deploy/docker/Dockerfile").read_text()
    sources = {
        word
        for line in dockerfile.splitlines()
        if line.strip().upper().startswith(("COPY", "ADD")) and "--from=" not in line
        for word in line.split()[1:-1]
    }

    assert sources <= {"pyproject.toml", "uv.lock", "README.md", "shared", "services"}


def test_the_generated_local_secrets_appear_in_no_tracked_file() -> None:
    generated = [
        REPO_ROOT / ".local/kafka-secure/credentials",
        REPO_ROOT / ".local/postgres-tls/credentials",
    ]
    secrets = [
        line.partition("=")[2]
        for path in generated
        if path.is_file()
        for line in path.read_text().splitlines()
        if "=" in line
    ]
    if not secrets:
        pytest.skip("no local secrets generated yet (deploy/local/infra.sh up secure)")

    leaks = [
        str(path.relative_to(REPO_ROOT))
        for path, text in _text_files()
        if any(secret in text for secret in secrets)
    ]

    assert leaks == []


@pytest.mark.parametrize(
    ("text", "caught"),
    [
        # Split literals: the examples must not be findings in this file itself.
        ("url = 'postgresql://app:" + "s3cr3t-Pa55@db:5432/app'", True),
        ('"password": ' + '"hunter2hunter2"', True),
        ("TRIAGEFLOW_KAFKA_SASL_PASSWORD=" + "0123456789abcdef", True),
        ("-----BEGIN " + "RSA PRIVATE KEY-----", True),
        ("-----BEGIN " + "PRIVATE KEY-----", True),
        ("AKIA" + "ABCDEFGHIJKLMNOP", True),
        ("postgresql://triageflow:triageflow@127.0.0.1:5432/triageflow", False),
        ("TRIAGEFLOW_KAFKA_SASL_PASSWORD=$KS_CLIENT_PASSWORD", False),
        ("postgresql://triageflow:${TRIAGEFLOW_DB_PASSWORD:?set it}@postgres/triageflow", False),
        ('password="@BROKER_PASSWORD@";', False),
        ("sasl_password: SecretStr | None = Field(default=None)", False),
    ],
)
def test_the_scan_catches_secrets_and_lets_references_through(text: str, caught: bool) -> None:
    assert bool(_findings(text)) is caught
