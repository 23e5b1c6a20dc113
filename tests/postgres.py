"""A real PostgreSQL server for the archive's tests: started in a temp dir, stopped at the end.

It uses the Debian package's binaries (``/usr/lib/postgresql/<version>/bin``, or ``initdb`` on PATH):
``initdb`` a cluster in a fresh temp dir, ``pg_ctl start`` on a free 127.0.0.1 port (its unix socket
in the same dir), trust authentication for the local superuser ``postgres``. PostgreSQL refuses to run
as root, so as root the dir is chowned to ``nobody`` and both programs run through ``runuser -u
nobody``; as any other user they run as that user. Nothing is skipped: if no server can be started,
:func:`start` raises with the reason (and the server's log).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresServer", "start", "find_bin"]

_RUN_AS = "nobody"


def find_bin(name: str) -> str:
    """The newest Debian PostgreSQL's ``name`` (initdb, pg_ctl), else one on PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path is None:
        raise RuntimeError(f"PostgreSQL's {name} not found (install the Debian package 'postgresql')")
    return on_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    data_dir: Path
    port: int
    prefix: list[str]

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """A fresh empty database; its URL (every test gets its own)."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run([*self.prefix, find_bin("pg_ctl"), "-D", str(self.data_dir / "data"), "-m", "immediate",
                        "-w", "stop"], capture_output=True, timeout=60, cwd=self.data_dir)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _run(cmd: list[str], cwd: Path, what: str, log: Path | None = None) -> None:
    got = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd)
    if got.returncode != 0:
        tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
        raise RuntimeError(f"PostgreSQL {what} failed ({' '.join(cmd)}): {got.stderr.strip()} {got.stdout.strip()}"
                           f"\n{tail}")


def start() -> PostgresServer:
    """Start a throw-away server; RuntimeError saying why if it cannot."""
    base = Path(tempfile.mkdtemp(prefix="pdh-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam(_RUN_AS)
        os.chown(base, user.pw_uid, user.pw_gid)
        prefix = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", _RUN_AS, "--"]
    data, log = base / "data", base / "server.log"
    try:
        _run([*prefix, find_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
              "--no-sync"], base, "initdb")
        port = _free_port()
        opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {base} -c fsync=off"
        _run([*prefix, find_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "-t", "60", "start"],
             base, "start", log)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return PostgresServer(base, port, prefix)
