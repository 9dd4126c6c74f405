"""`pip install stateless-auth` installs the verifier and nothing of the issuer (issue 17).

One fresh venv, the project installed into it from a wheel as a user gets it: the base alone
first, then the `server` extra. pip runs from this interpreter (`pip --python`) and uses its
cache, pinned (`-c`) to the versions installed here, so CI, which has just installed them
all, downloads nothing new. Without a reachable package index the module skips locally and
fails in CI (`CI=true`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# What setuptools reads to build the wheel (pyproject.toml's [tool.setuptools] and readme).
_BUILD_INPUTS = ("pyproject.toml", "README.md", "auth_service", "resource_service")

# The verifier's whole install: its imports (fastapi, pydantic-settings, PyJWT with
# cryptography, httpx, anyio, prometheus-client, structlog) and what they bring.
BASE = {
    "annotated-doc",
    "annotated-types",
    "anyio",
    "certifi",
    "cffi",
    "cryptography",
    "fastapi",
    "h11",
    "httpcore",
    "httpx",
    "idna",
    "opentelemetry-api",
    "prometheus-client",
    "pycparser",
    "pydantic",
    "pydantic-core",
    "pydantic-settings",
    "pyjwt",
    "python-dotenv",
    "starlette",
    "stateless-auth",
    "structlog",
    "typing-extensions",
    "typing-inspection",
}
ISSUER_MODULES = {
    "sqlalchemy",
    "alembic",
    "asyncpg",
    "aiosqlite",
    "argon2",
    "passlib",
    "jinja2",
    "redis",
    "uvicorn",
    "auth_service",
}
_UNREACHABLE = ("NewConnectionError", "Max retries exceeded", "No matching distribution found")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH: what the venv runs comes from the venv, never from the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _pip(*args: str | Path, cwd: Path) -> None:
    """pip from this interpreter, with its cache; an unreachable index skips (fails in CI)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=_clean_env(),
    )
    if done.returncode != 0 and any(sign in done.stderr for sign in _UNREACHABLE):
        require(f"the package index (pip {args[0]}: {done.stderr.strip().splitlines()[-1]})")
    assert done.returncode == 0, done.stderr


def _pins_of_this_environment() -> str:
    """A constraints file: the fresh venv gets the versions tested here, all in pip's cache."""
    pins: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        pins.setdefault(normalized(dist.metadata["Name"]), dist.version)  # the first on sys.path is the one imported
    pins.pop("stateless-auth", None)  # the wheel under test, not this checkout's editable install
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


@dataclass(frozen=True)
class Venv:
    root: Path
    wheel: Path
    constraints: Path

    def bin(self, name: str) -> Path:
        return self.root / "bin" / name

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args], capture_output=True, text=True, timeout=60, cwd=self.root, env=_clean_env()
        )

    def install(self, requirement: str) -> None:
        # --no-compile: the venv is thrown away, and byte-compiling it costs CI more than it saves.
        _pip(
            "--python",
            self.bin("python"),
            "install",
            "-q",
            "--no-compile",
            "-c",
            self.constraints,
            requirement,
            cwd=self.root,
        )

    def installed(self) -> set[str]:
        probe = (
            "import importlib.metadata as m, json; print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"
        )
        return {normalized(name) for name in json.loads(self.run(self.bin("python"), "-c", probe).stdout)}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """The base install: a wheel built from a copy of the checkout, then a venv without pip."""
    require(None if importlib.util.find_spec("pip") else "pip in the test interpreter")
    tmp = tmp_path_factory.mktemp("distribution")
    source = tmp / "source"
    source.mkdir()
    for name in _BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    _pip("wheel", "-q", "--no-deps", "-w", tmp / "wheels", source, cwd=tmp)
    (tmp / "constraints.txt").write_text(_pins_of_this_environment())
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp / "venv"], check=True)
    venv = Venv(tmp / "venv", next((tmp / "wheels").glob("stateless_auth-*.whl")), tmp / "constraints.txt")
    venv.install(str(venv.wheel))
    return venv


# The tests below share one venv and run in this order: the last adds the `server` extra.


def test_the_base_installs_the_verifiers_distributions_only(venv: Venv) -> None:
    installed = venv.installed() - {"pip", "setuptools", "wheel"}
    assert installed == BASE, f"not expected: {sorted(installed - BASE)}, missing: {sorted(BASE - installed)}"


def test_importing_the_verifier_loads_nothing_of_the_issuer(venv: Venv) -> None:
    probe = "import json, sys, resource_service; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    done = venv.run(venv.bin("python"), "-c", probe)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert "resource_service" in loaded and not loaded & ISSUER_MODULES, loaded & ISSUER_MODULES


def test_the_commands_name_the_extra_they_need_in_one_line(venv: Venv) -> None:
    issuer = venv.run(venv.bin("auth-service"), "--help")
    assert (issuer.returncode, issuer.stdout) == (1, "")
    assert len(issuer.stderr.splitlines()) == 1 and "pip install 'stateless-auth[server]'" in issuer.stderr

    replica = venv.run(venv.bin("resource-service"), "serve")
    assert (replica.returncode, replica.stdout) == (1, "")
    assert len(replica.stderr.splitlines()) == 1 and "pip install 'stateless-auth[replica]'" in replica.stderr

    helped = venv.run(venv.bin("resource-service"), "--help")
    assert helped.returncode == 0 and "serve" in helped.stdout


def test_the_server_extra_installs_the_issuer(venv: Venv) -> None:
    venv.install(f"{venv.wheel}[server]")
    assert {"sqlalchemy", "alembic", "uvicorn"} <= venv.installed()
    issuer = venv.run(venv.bin("auth-service"), "--help")
    assert issuer.returncode == 0, issuer.stderr
    assert "serve" in issuer.stdout
