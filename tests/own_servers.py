"""Servers of the test's own, on free ports, for the fault tests to break: a redis-server
and a PostgreSQL cluster. Never the machine's shared Redis or PostgreSQL: those serve
other tests and other people."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import random
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from auth_service.launch import free_port
from tests.conftest import eventually, require

PG_BIN = Path(os.environ.get("TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


class OwnRedis:
    """A redis-server on a free port, without persistence: a restart empties it."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("redis-server") is None:
            require("redis-server (apt-get install -y redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OwnRedis:
        self._proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert eventually(self.pings, timeout=10), "own redis-server did not start"
        return self

    def pings(self) -> bool:
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM: a clean shutdown."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None

    def kill(self) -> None:
        """SIGKILL: no goodbye to any client."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(10)
            self._proc = None


class OwnPostgres:
    """A PostgreSQL cluster of the test's own: initdb in a temp dir, trust auth, loopback only.

    The data directory is under /tmp, not pytest's tmp_path: that is 0700 root, where the
    `postgres` user (whom the server must run as when we are root) cannot enter."""

    def __init__(self) -> None:
        initdb = PG_BIN / "initdb"
        require(None if initdb.exists() else f"PostgreSQL server binaries ({initdb}; apt-get install postgresql)")
        self._as: list[str] = []
        self.dir = Path(tempfile.mkdtemp(prefix="fault-pg-"))
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                require("a `postgres` system user to run a PostgreSQL server as")
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self.data = self.dir / "data"
        self.port = free_port()
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"
        )

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [*self._as, str(PG_BIN / tool), *args], check=False, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{tool} {' '.join(args)}: {done.stderr}{self.log()}"

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-t",
            "30",
            "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir}",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        if self.running():
            subprocess.run(
                [*self._as, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                check=False,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.dir, ignore_errors=True)

    def amcheck(self, url: str) -> None:
        """pg_amcheck on every table and index of the database at `url` (exit 0: sound)."""
        self._run(
            "pg_amcheck",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "--install-missing",
            "--heapallindexed",
            url.rsplit("/", 1)[1],
        )

    def database(self) -> str:
        """A new, migrated database; its SQLAlchemy URL."""
        import asyncpg

        from auth_service.storage import migration_engine
        from auth_service.storage.schema import upgrade

        name = f"auth_{random.getrandbits(40):x}"
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

        async def create() -> None:
            conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", timeout=10)
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()
            engine = migration_engine(url)
            try:
                await upgrade(engine)
            finally:
                await engine.dispose()

        asyncio.run(create())
        return url


class CuttableProxy:
    """A TCP proxy on a free port in front of `target`: `cut()` drops every connection and
    refuses new ones, as a network partition between one service and its database would;
    `mend()` lets connections through again."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        import socket
        import threading

        self.port = free_port()
        self._target = (target_host, target_port)
        self._open = True
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if not self._open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: object, sink: object) -> None:
        import socket

        assert isinstance(source, socket.socket) and isinstance(sink, socket.socket)
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        import socket

        self._open = False
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def mend(self) -> None:
        self._open = True

    def close(self) -> None:
        self.cut()
        self._listener.close()
