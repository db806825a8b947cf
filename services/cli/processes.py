"""Start and stop local copies of the services as background processes (`make up`)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("classifier", "policy", "router", "audit")
BASE_PORTS = {"classifier": 8100, "policy": 8200, "router": 8300, "audit": 8400}


@dataclass(frozen=True)
class ServiceProcess:
    """One running copy of a service."""

    service: str
    copy: int
    pid: int
    port: int
    log: Path


def run_dir(state_dir: Path) -> Path:
    """Return the folder holding pid and log files of local services."""
    path = state_dir / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); /proc tells whether it really runs.
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False


def running(state_dir: Path) -> list[ServiceProcess]:
    """Return the local service processes that are alive."""
    found = []
    for pid_file in sorted(run_dir(state_dir).glob("*.pid")):
        service, _, copy = pid_file.stem.rpartition("-")
        pid = int(pid_file.read_text().split()[0])
        port = int(pid_file.read_text().split()[1])
        if _alive(pid):
            found.append(
                ServiceProcess(service, int(copy), pid, port, pid_file.with_suffix(".log"))
            )
        else:
            pid_file.unlink(missing_ok=True)
    return found


def start(
    state_dir: Path,
    *,
    copies: dict[str, int],
    env: dict[str, str] | None = None,
    port_offset: int = 0,
) -> list[ServiceProcess]:
    """Start the wanted number of copies of each service that are not running yet.

    `port_offset` shifts the ops ports, so a second set (the chaos harness) can run
    beside `make up`.
    """
    folder = run_dir(state_dir)
    # One starter at a time: two concurrent starts (a supervisor and a restart) would both see
    # a copy missing, spawn it twice and keep one pid file, leaking the other process.
    with _exclusive(folder / ".start.lock"):
        return _start_missing(folder, copies=copies, env=env, port_offset=port_offset)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _start_missing(
    folder: Path, *, copies: dict[str, int], env: dict[str, str] | None, port_offset: int
) -> list[ServiceProcess]:
    alive = {(p.service, p.copy) for p in running(folder.parent)}
    started = []
    for service, count in copies.items():
        for copy in range(1, count + 1):
            if (service, copy) in alive:
                continue
            port = BASE_PORTS[service] + port_offset + copy
            prefix = f"TRIAGEFLOW_{service.upper()}_"
            child_env = {
                **os.environ,
                **(env or {}),
                prefix + "HTTP_PORT": str(port),
                prefix + "INSTANCE_ID": f"{service}-{copy}",
            }
            log = folder / f"{service}-{copy}.log"
            with log.open("ab") as sink:
                process = subprocess.Popen(
                    [sys.executable, "-m", f"services.{service}"],
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    env=child_env,
                    start_new_session=True,
                )
            (folder / f"{service}-{copy}.pid").write_text(f"{process.pid} {port}\n")
            started.append(ServiceProcess(service, copy, process.pid, port, log))
    return started


def stop(state_dir: Path, *, timeout: float = 20.0) -> list[ServiceProcess]:
    """SIGTERM every local service, wait for a graceful exit, SIGKILL stragglers.

    Holds the start lock: a start in flight finishes (and writes its pid file) first, so the
    copy it spawned is stopped too, and no start runs while the services are stopping.
    """
    with _exclusive(run_dir(state_dir) / ".start.lock"):
        return _stop_all(state_dir, timeout)


def _stop_all(state_dir: Path, timeout: float) -> list[ServiceProcess]:
    processes = running(state_dir)
    for process in processes:
        os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(p.pid) for p in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    for process in processes:
        if _alive(process.pid):
            os.kill(process.pid, signal.SIGKILL)
    for pid_file in run_dir(state_dir).glob("*.pid"):
        pid_file.unlink(missing_ok=True)
    return processes


def wait_ready(processes: list[ServiceProcess], *, timeout: float = 90.0) -> list[str]:
    """Wait until every process answers `/health/ready`; return the ones that did not."""
    import urllib.error
    import urllib.request

    pending = list(processes)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for process in list(pending):
            url = f"http://127.0.0.1:{process.port}/health/ready"
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status < 300:
                        pending.remove(process)
            except (urllib.error.URLError, OSError):
                if not _alive(process.pid):
                    return [f"{process.service}-{process.copy} exited; see {process.log}"]
        time.sleep(0.2)
    return [f"{p.service}-{p.copy} not ready; see {p.log}" for p in pending]
