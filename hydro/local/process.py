"""What both local servers need: a free port, waiting for it, and running as a non-root user."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from hydro.errors import LocalServiceError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, seconds: float, alive: subprocess.Popen[bytes] | None = None) -> bool:
    """True once something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def service_user(name: str) -> tuple[int, int] | None:
    """The (uid, gid) to run a server as when we are root, which PostgreSQL refuses to be."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError as exc:
        raise LocalServiceError(
            f"running as root needs the system user {name!r} (created by its Debian package)"
        ) from exc
    return entry.pw_uid, entry.pw_gid


def give_to(path: Path, owner: tuple[int, int] | None) -> None:
    """Hands ``path`` to the service user, and lets it traverse (not list) the folders above."""
    if owner is None:
        return
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
    for folder, _, files in os.walk(path):
        os.chown(folder, *owner)
        for name in files:
            os.chown(os.path.join(folder, name), *owner)


def run_as(
    command: Sequence[str], owner: tuple[int, int] | None, what: str
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        check=False,
        user=owner[0] if owner else None,
        group=owner[1] if owner else None,
        extra_groups=[] if owner else None,
        start_new_session=True,  # servers it starts must not get the terminal's Ctrl-C
    )
    if result.returncode != 0:
        raise LocalServiceError(f"{what} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def find_binary(name: str, search: Sequence[str], package: str) -> Path:
    found = shutil.which(name)
    if found:
        return Path(found)
    for pattern in search:
        candidates = sorted(Path("/").glob(pattern.lstrip("/")), reverse=True)
        if candidates:
            return candidates[0]
    raise LocalServiceError(f"{name} not found: install the Debian package {package!r}")


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
