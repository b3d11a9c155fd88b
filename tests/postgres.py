"""A throwaway PostgreSQL cluster for tests (issue 31): initdb into a fresh folder, a server that listens on a
unix socket there and on 127.0.0.1 at a free port, trust authentication, one database; stopped and deleted after.

Debian's `postgresql` package (which `make test` installs where initdb is missing) puts initdb and pg_ctl in
/usr/lib/postgresql/VERSION/bin, off PATH. initdb refuses to run as root, so as root the cluster is made and run
by the `postgres` user (which that package creates) through `runuser`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

USER = "postgres"  # the cluster's superuser, whoever runs it


class Unavailable(RuntimeError):
    """PostgreSQL cannot be started here: one line says why."""


def bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: pg_config's, Debian's newest, or PATH's."""
    candidates = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        # Debian's pg_config comes with libpq-dev too, naming a bindir that may hold no server: checked below.
        candidates.append(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10,
                                         check=True).stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                         if Path(p).parent.name.isdigit() else 0, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for folder in candidates:
        if folder and all((Path(folder) / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def last_line(text: str) -> str:
    """The last line of a tool's output that says what went wrong (a server log's FATAL or ERROR, without its
    time and process), else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    worst = [line for line in lines if "FATAL:" in line or "ERROR:" in line]
    if worst:
        return worst[-1][worst[-1].index("FATAL:" if "FATAL:" in worst[-1] else "ERROR:"):]
    return lines[-1] if lines else "(no output)"


@contextlib.contextmanager
def cluster(database: str = "sweeps") -> Iterator[str]:
    """Start a cluster holding `database`; yield its SQLAlchemy URL (over TCP, psycopg 3). Raises Unavailable with a
    one-line reason where that cannot be done; whatever was started is stopped and deleted in any case."""
    try:
        import psycopg  # noqa: F401 - the driver `postgresql://` names (SQLAlchemy 2.1)
    except ImportError:
        raise Unavailable("psycopg is not installed (pip install -e '.[postgres]')") from None
    bins = bindir()
    if bins is None:
        raise Unavailable("initdb not found (make test installs Debian's postgresql)")
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:
        import pwd

        try:
            owner = pwd.getpwnam(USER)
        except KeyError:
            raise Unavailable(f"running as root and there is no '{USER}' user to run initdb as") from None
        runuser = shutil.which("runuser")
        if runuser is None:
            raise Unavailable(f"running as root and runuser is not found to run initdb as '{USER}'")
        as_user = [runuser, "-u", USER, "--"]
    # Not pytest's tmp_path: its parents are private to root, and the server's user must reach its folder.
    home = Path(tempfile.mkdtemp(prefix="cortexgraph-pg-"))
    data = home / "data"

    def run(*command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *command], cwd=home, capture_output=True, text=True, timeout=timeout)

    try:
        try:
            url = _start(run, bins, home, owner, database)
        except (OSError, subprocess.SubprocessError) as exc:  # a tool that cannot run, or hangs
            raise Unavailable(last_line(str(exc))) from None
        yield url
    finally:
        if (data / "postmaster.pid").exists():  # started, or half started
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                run(str(bins / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def _start(run, bins: Path, home: Path, owner, database: str) -> str:
    import psycopg

    data, log = home / "data", home / "server.log"
    if owner is not None:
        os.chown(home, owner.pw_uid, owner.pw_gid)
    done = run(str(bins / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8",
               "--locale=C")
    if done.returncode:
        raise Unavailable(f"initdb failed: {last_line(done.stderr or done.stdout)}")
    port = free_port()
    settings = {"listen_addresses": "127.0.0.1", "port": port, "unix_socket_directories": home,
                "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    options = " ".join(f"-c {k}={shlex.quote(str(v))}" for k, v in settings.items())
    done = run(str(bins / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start",
               timeout=90)
    if done.returncode:
        reason = last_line(log.read_text()) if log.is_file() else last_line(done.stderr or done.stdout)
        raise Unavailable(f"pg_ctl start failed: {reason}")
    try:  # over TCP, as the URL will be
        connection = psycopg.connect(host="127.0.0.1", port=port, user=USER, dbname="postgres", autocommit=True)
    except psycopg.Error as exc:
        raise Unavailable(f"cannot connect to the server started: {last_line(str(exc))}") from None
    try:
        connection.execute(f'CREATE DATABASE "{database}"')  # (outside a transaction: autocommit)
    finally:
        connection.close()
    return f"postgresql://{USER}@127.0.0.1:{port}/{database}"
