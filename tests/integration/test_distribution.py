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


@dataclass(frozen=True)
class Venv:
    root: Path
    wheel: Path
    constraints: Path

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        """A command of the venv's, away from the checkout: nothing imports it by accident."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return subprocess.run(
            [str(a) for a in args], capture_output=True, text=True, timeout=300, cwd=self.root, env=env
        )

    def bin(self, name: str) -> Path:
        return self.root / "bin" / name

    def pip_install(self, requirement: str) -> None:
        # --no-compile: the venv is thrown away, and byte-compiling it costs CI more than it saves.
        pip = (sys.executable, "-m", "pip", "--python", self.bin("python"), "install", "-q", "--no-compile")
        done = self.run(*pip, "-c", self.constraints, requirement)
        if done.returncode != 0 and any(sign in done.stderr for sign in _UNREACHABLE):
            require(f"the package index (pip install failed: {done.stderr.strip().splitlines()[-1]})")
        assert done.returncode == 0, done.stderr

    def installed(self) -> set[str]:
        probe = (
            "import importlib.metadata as m, json; print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"
        )
        return {normalized(name) for name in json.loads(self.run(self.bin("python"), "-c", probe).stdout)}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    require(None if importlib.util.find_spec("pip") else "pip in the test interpreter")
    tmp = tmp_path_factory.mktemp("distribution")
    source = tmp / "source"
    source.mkdir()
    for name in _BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    wheels = tmp / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, source], capture_output=True, text=True
    )
    if built.returncode != 0 and any(sign in built.stderr for sign in _UNREACHABLE):
        require(f"the package index (building the wheel failed: {built.stderr.strip().splitlines()[-1]})")
    assert built.returncode == 0, built.stderr
    here = {
        normalized(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions()
        if normalized(d.metadata["Name"]) != "stateless-auth"
    }
    constraints = tmp / "constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(here.items())))
    root = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root], check=True)
    venv = Venv(root, next(wheels.glob("stateless_auth-*.whl")), constraints)
    venv.pip_install(str(venv.wheel))
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
    venv.pip_install(f"{venv.wheel}[server]")
    assert {"sqlalchemy", "alembic", "uvicorn"} <= venv.installed()
    issuer = venv.run(venv.bin("auth-service"), "--help")
    assert issuer.returncode == 0, issuer.stderr
    assert "serve" in issuer.stdout
