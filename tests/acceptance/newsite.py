"""A brand-new Django site, built the way a new user builds one, for tests of what a plain install gives.

The package is built into a wheel from a copy of this checkout's sources, installed into a fresh virtualenv
(nothing of the test environment is visible there: a missing dependency or an import of an extra that is not
installed fails as it would for a user), and a `django-admin startproject` site with the default `User` model
gets the README's install steps. Tests add their own apps, settings and URLs through `NewSite`, so variants (the
`django.tasks` backend, other extras) build on the same steps.

The site uses its own database on the test PostgreSQL (`fresh_database`), and talks HTTP to a real
`runserver` (`NewSite.serve`, `Browser`).
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "jobscheduler")
PIP_TIMEOUT = 600


#: (command, seconds) of every command run, in order: where the time of a slow run went.
TIMINGS: list[tuple[str, float]] = []


def run(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300):
    """Run a command; a failure raises with its output, which is what a reader of a failed test needs."""
    started = time.monotonic()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    TIMINGS.append((" ".join(str(a) for a in args[1:4]), time.monotonic() - started))
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )
    return result


def build_wheel(dest: Path) -> Path:
    """The wheel of this checkout, built from a copy of its sources so the build leaves nothing in the tree."""
    src = dest / "src"
    src.mkdir(parents=True)
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dest), str(src)],
        timeout=PIP_TIMEOUT,
    )
    (wheel,) = dest.glob("django_jobscheduler-*.whl")
    return wheel


def pinned_constraints(dest: Path) -> Path:
    """requirements/base.txt as a pip constraints file, so the fresh site gets the versions we test with.

    Constraints name no extras, so `psycopg[binary]==X` becomes `psycopg==X` (psycopg's `binary` extra pins
    `psycopg-binary` to its own version).
    """
    lines = []
    for line in (ROOT / "requirements" / "base.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            lines.append(re.sub(r"\[[^\]]*\]", "", line))
    path = dest / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True, slots=True)
class Database:
    """Connection settings of a database on the test PostgreSQL, as a site's DATABASES entry."""

    name: str
    user: str
    password: str
    host: str
    port: str

    def django_settings(self) -> dict[str, str]:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": self.name,
            "USER": self.user,
            "PASSWORD": self.password,
            "HOST": self.host,
            "PORT": self.port,
        }


@contextlib.contextmanager
def fresh_database(prefix: str = "newsite") -> Iterator[Database]:
    """An empty database of its own on the server the tests use, dropped afterwards."""
    s = connection.settings_dict
    server = Database(
        name=f"{prefix}_{uuid.uuid4().hex[:10]}",
        user=s["USER"],
        password=s["PASSWORD"] or "",
        host=s["HOST"] or s["OPTIONS"].get("host", ""),
        port=str(s["PORT"] or ""),
    )
    admin = {
        "dbname": "postgres",
        "user": server.user,
        "host": server.host or None,
        "port": server.port or None,
    }
    if server.password:
        admin["password"] = server.password
    with psycopg.connect(**{k: v for k, v in admin.items() if v is not None}, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{server.name}"')
        try:
            yield server
        finally:
            conn.execute(f'DROP DATABASE IF EXISTS "{server.name}" WITH (FORCE)')


class NewSite:
    """A `startproject` site in `root` with the wheel installed in its own virtualenv."""

    def __init__(self, root: Path, *, project: str = "mysite") -> None:
        self.root = root
        self.venv = root / "venv"
        self.dir = root / project
        self.project = project

    # -- building -----------------------------------------------------------------------------------------------

    def install(self, wheel: Path, constraints: Path, extras: tuple[str, ...] = ()) -> None:
        """A fresh virtualenv with the wheel (and the named extras) and its dependencies from the package index.

        The test environment's pip installs into it (`pip --python`), which saves bootstrapping a pip of its
        own; and without byte-compiling, since the site imports a small part of what it installs.
        """
        run([sys.executable, "-m", "venv", "--without-pip", str(self.venv)])
        target = f"django-jobscheduler[{','.join(extras)}] @ {wheel.as_uri()}" if extras else str(wheel)
        pip = [sys.executable, "-m", "pip", "--python", str(self.bin("python")), "install", "--quiet"]
        run([*pip, "--no-compile", "-c", str(constraints), target], timeout=PIP_TIMEOUT)

    def startproject(self) -> None:
        self.dir.mkdir(parents=True)
        run([str(self.bin("django-admin")), "startproject", self.project, str(self.dir)])

    def startapp(self, name: str, files: dict[str, str]) -> None:
        """`manage.py startapp NAME` plus the given files (relative to the app, dedented)."""
        self.manage("startapp", name)
        for relative, text in files.items():
            (self.dir / name / relative).write_text(textwrap.dedent(text).lstrip())

    def add_settings(self, text: str) -> None:
        """Lines appended to the generated settings.py (as the README's install section says to)."""
        self._append(self.dir / self.project / "settings.py", text)

    def add_urls(self, text: str) -> None:
        """Lines appended to the generated urls.py (which defines `urlpatterns` and imports `path`)."""
        self._append(self.dir / self.project / "urls.py", text)

    @staticmethod
    def _append(path: Path, text: str) -> None:
        with path.open("a") as out:
            out.write("\n" + textwrap.dedent(text).lstrip())

    # -- running ------------------------------------------------------------------------------------------------

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def env(self, **extra: str) -> dict[str, str]:
        """The site's environment: nothing of this checkout or its virtualenv leaks in."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV")
        }
        env.update(
            PATH=f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", PYTHONUNBUFFERED="1", **extra
        )
        return env

    def manage(self, *args: str, check: bool = True, timeout: float = 120, **env: str):
        command = [str(self.bin("python")), "manage.py", *args]
        if check:
            return run(command, cwd=self.dir, env=self.env(**env), timeout=timeout)
        return subprocess.run(
            command, cwd=self.dir, env=self.env(**env), capture_output=True, text=True, timeout=timeout
        )

    def python(self, code: str) -> str:
        """`python -c CODE` in the site's virtualenv, outside any checkout; its standard output."""
        return run([str(self.bin("python")), "-c", code], cwd=self.root, env=self.env()).stdout

    def shell(self, code: str, **env: str) -> str:
        """`manage.py shell -c CODE`; its standard output."""
        return self.manage("shell", "-c", textwrap.dedent(code), **env).stdout

    @contextlib.contextmanager
    def serve(self, log: Path) -> Iterator[str]:
        """`manage.py runserver` on a free local port; yields its base URL."""
        port = _free_port()
        with log.open("wb") as out:
            server = subprocess.Popen(
                [str(self.bin("python")), "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                cwd=self.dir,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                _wait_for_port(port, server, log)
                yield f"http://127.0.0.1:{port}"
            finally:
                server.terminate()
                server.wait(20)


class Browser:
    """HTTP with cookies and Django's CSRF token, the way a person's browser talks to the site."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def get(self, path: str) -> tuple[int, str]:
        return self._open(urllib.request.Request(self.base_url + path))

    def get_json(self, path: str) -> dict:
        status, body = self.get(path)
        assert status == 200, (status, body[:2000])
        return json.loads(body)

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        """GET the form's page for its CSRF token, then POST the fields with it (redirects followed)."""
        status, page = self.get(path)
        assert status == 200, (status, page[:2000])
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, page[:2000]
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), **fields}).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, headers={"Referer": self.base_url + path}
        )
        return self._open(request)

    def sign_in(self, username: str, password: str, then: str) -> tuple[int, str]:
        """Sign in on the admin's login page (the README's LOGIN_URL) and land on `then`."""
        return self.post_form(
            f"/admin/login/?next={then}", {"username": username, "password": password, "next": then}
        )

    def _open(self, request: urllib.request.Request) -> tuple[int, str]:
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(
                f"runserver exited with {server.returncode}:\n{log.read_text(errors='replace')}"
            )
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(
        f"runserver did not listen on {port} within {timeout}s:\n{log.read_text(errors='replace')}"
    )
