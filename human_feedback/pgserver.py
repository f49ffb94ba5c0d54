"""A throwaway PostgreSQL server in a temporary folder, for tests and benchmarks.

``initdb`` makes a cluster in a new temporary folder, ``pg_ctl`` starts it on a free port listening only on
127.0.0.1 (its socket in the same folder, so no system service or ``/var/run`` is touched), and
:meth:`TemporaryPostgres.stop` stops it and deletes the folder. PostgreSQL refuses to run as root, so as
root the server runs as the ``postgres`` user (``runuser``), which Debian's ``postgresql`` package creates.

The binaries are found in ``$DYADIC_PG_BIN``, else the newest ``/usr/lib/postgresql/*/bin``, else ``PATH``.

Example:
    >>> with TemporaryPostgres() as pg:  # doctest: +SKIP
    ...     url = pg.create_database("feedback")  # postgresql+psycopg://dyadic@127.0.0.1:PORT/feedback
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from human_feedback.process import free_port

SUPERUSER = "dyadic"
SERVICE_USER = "postgres"
# Tests never crash the database server itself (the durability test kills the annotation server), so a
# cluster without fsync loses nothing they check and starts and writes several times faster.
FAST_SETTINGS = ("fsync=off", "full_page_writes=off")


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's binaries are missing or the server did not start; the message says what to install."""


def postgres_bin_dir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``."""
    candidates = [os.environ.get("DYADIC_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    found = shutil.which("initdb")
    candidates.append(str(Path(found).parent) if found else "")
    for directory in candidates:
        if directory and (Path(directory) / "initdb").is_file() and (Path(directory) / "pg_ctl").is_file():
            return Path(directory)
    raise PostgresUnavailable(
        "PostgreSQL's server binaries (initdb, pg_ctl) were not found; install Debian's package with "
        "`apt-get install postgresql` (scripts/setup.sh does), or point DYADIC_PG_BIN at their directory"
    )


def _version_key(path: str) -> tuple[int, ...]:
    parts = Path(path).parent.name.split(".")
    return tuple(int(p) for p in parts if p.isdigit())


class TemporaryPostgres:
    """A PostgreSQL server of its own in a temporary folder; :meth:`stop` removes every trace.

    Args:
        durable: keep PostgreSQL's crash-safe defaults (fsync on); benchmarks use this so they compare
            like with like. Off: :data:`FAST_SETTINGS` for tests.
    """

    def __init__(self, *, durable: bool = False) -> None:
        self.bin = postgres_bin_dir()
        self.durable = durable
        self.port = 0
        self.root: Path | None = None
        self._as_service_user = os.geteuid() == 0
        self._databases = 0

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of a database on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> TemporaryPostgres:
        """Create the cluster and start the server; waits until it accepts connections."""
        self.root = Path(tempfile.mkdtemp(prefix="dyadic-pg-"))
        if self._as_service_user:
            _service_user_owns(self.root)
        data = self.root / "data"
        self._run(
            [str(self.bin / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
             "--no-sync", "--no-instructions"],
        )  # fmt: skip
        self.port = free_port()
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
        if not self.durable:
            options += "".join(f" -c {s}" for s in FAST_SETTINGS)
        log = self.root / "server.log"
        try:
            self._run(
                [str(self.bin / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]
            )
        except PostgresUnavailable as e:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            self._remove()
            raise PostgresUnavailable(f"{e}\nserver log:\n{tail}") from None
        atexit.register(self.stop)
        return self

    def create_database(self, name: str | None = None) -> str:
        """Create a new, empty database (named ``name`` or ``dbN``) and return its URL."""
        import psycopg

        self._databases += 1
        name = name or f"db{self._databases}"
        with psycopg.connect(self._libpq("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self._libpq("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _libpq(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its folder; safe to call twice."""
        if self.root is None:
            return
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            # Already gone or not: the folder is removed all the same.
            with contextlib.suppress(PostgresUnavailable):
                self._run([str(self.bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        self._remove()

    def _remove(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def _run(self, command: list[str]) -> None:
        if self._as_service_user:
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root needs `runuser` to start PostgreSQL as postgres")
            command = ["runuser", "-u", SERVICE_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd="/", check=False)
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"`{' '.join(command)}` failed ({result.returncode}): {(result.stderr or result.stdout)[-1500:]}"
            )

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _service_user_owns(path: Path) -> None:
    """Hand ``path`` to the ``postgres`` user (PostgreSQL will not run as root)."""
    import pwd

    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root, PostgreSQL must run as the {SERVICE_USER!r} user, which does not exist; "
            "install Debian's `postgresql` package (it creates the user) or run as a normal user"
        ) from None
    os.chown(path, entry.pw_uid, entry.pw_gid)
