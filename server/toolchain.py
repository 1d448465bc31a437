"""The embedded server's toolchain: the ``tritonserver`` binary, its python backend, the model environment.

Facts this relies on (checked on Debian 12, see the project's notes on running Triton on a CPU):

* the ``nvidia-pytriton`` 0.7.0 wheel ships ``tritonserver`` 2.51.0 under ``pytriton/tritonserver`` with the
  python backend and one backend stub per Python version; its libraries are in ``nvidia_pytriton.libs``;
* the stub links the *shared* libpython of its version and takes site-packages from the first ``python3``
  on ``PATH`` — so models run in a venv made from a Python that has a shared libpython (Debian's
  ``python3.11``), put first on ``PATH``;
* numpy 2.x breaks string inputs in the 2.51 stub, so the model environment pins ``numpy<2``.

Everything built here is cached (see :func:`trtclient.server.paths.cache_dir`) and built once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from trtclient.errors import SetupError
from trtclient.server.paths import cache_dir

__all__ = [
    "MODEL_ENV_PACKAGES",
    "Toolchain",
    "find_model_python",
    "locate_pytriton",
    "prepare",
    "requirements_env",
]

MODEL_ENV_PACKAGES = ("numpy<2", "tokenizers>=0.15")
"""What the python models import besides the standard library."""

MODEL_PYTHON_ENV = "TRTCLIENT_MODEL_PYTHON"
_MODEL_ENV_VERSION = "1"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Toolchain:
    """Paths of a prepared embedded server toolchain."""

    tritonserver: Path
    backend_dir: Path
    library_dir: Path
    model_env: Path
    server_version: str

    @property
    def model_env_bin(self) -> Path:
        """The model environment's ``bin`` directory (put first on ``PATH`` for the server)."""
        return self.model_env / "bin"

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a ``tritonserver`` process using this toolchain."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = os.pathsep.join([str(self.model_env_bin), env.get("PATH", "/usr/bin:/bin")])
        libs = [str(self.library_dir)]
        if env.get("LD_LIBRARY_PATH"):
            libs.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
        for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
            env.pop(name, None)
        return env


def locate_pytriton() -> tuple[Path, Path, str]:
    """Find the ``tritonserver`` root and library directory shipped by nvidia-pytriton, and their version."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise SetupError(
            "the embedded server needs the nvidia-pytriton wheel (it ships tritonserver): "
            "pip install 'trtclient[server]'"
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    root = package_dir / "tritonserver"
    binary = root / "bin" / "tritonserver"
    if not os.access(binary, os.X_OK):
        raise SetupError(f"{binary} is missing or not executable; reinstall nvidia-pytriton")
    library_dir = package_dir.parent / "nvidia_pytriton.libs"
    try:
        from importlib.metadata import version

        wheel_version = version("nvidia-pytriton")
    except Exception:  # pragma: no cover - metadata always present for an installed wheel
        wheel_version = "unknown"
    return root, library_dir, wheel_version


@dataclass(frozen=True)
class _PythonInfo:
    executable: str
    version: str
    libdir: str


def _probe_python(executable: str) -> _PythonInfo | None:
    code = (
        "import sys, sysconfig, json;"
        "print(json.dumps([f'{sys.version_info[0]}.{sys.version_info[1]}',"
        " sysconfig.get_config_var('Py_ENABLE_SHARED'), sysconfig.get_config_var('LIBDIR'),"
        " sysconfig.get_config_var('LDLIBRARY')]))"
    )
    try:
        out = subprocess.run(
            [executable, "-I", "-c", code], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        version, shared, libdir, ldlibrary = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if not shared or not libdir or not (Path(libdir) / str(ldlibrary)).exists():
        return None
    return _PythonInfo(executable=executable, version=str(version), libdir=str(libdir))


def find_model_python(stub_versions: set[str]) -> _PythonInfo:
    """Pick the Python the python-backend stub will run: a shared-libpython build with a matching stub."""
    configured = os.environ.get(MODEL_PYTHON_ENV)
    if configured:
        candidates = [configured]
    else:
        candidates = ["/usr/bin/python3.11", "/usr/bin/python3", "python3.11", "python3.12", "python3.10"]
    tried = []
    for candidate in candidates:
        path = shutil.which(candidate)
        if path is None:
            tried.append(f"{candidate} (not found)")
            continue
        info = _probe_python(path)
        if info is None:
            tried.append(f"{path} (no shared libpython)")
            continue
        if info.version not in stub_versions:
            tried.append(f"{path} (Python {info.version}: no backend stub for it)")
            continue
        return info
    hint = "apt-get install python3.11 python3.11-venv" if sys.platform.startswith("linux") else ""
    raise SetupError(
        "no Python usable by Triton's python backend was found (it needs a Python "
        f"{'/'.join(sorted(stub_versions))} built with a shared libpython); tried: {', '.join(tried)}. "
        f"Install one ({hint}) or point {MODEL_PYTHON_ENV} at it"
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_backend_dir(root: Path, python: _PythonInfo, target: Path) -> None:
    stub = root / "python_backend_stubs" / python.version / "triton_python_backend_stub"
    source = root / "backends" / "python"
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "python").mkdir(parents=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(source / name, staging / "python" / name)
    shutil.copy2(stub, staging / "python" / "triton_python_backend_stub")
    staging.rename(target)


def _build_model_env(python: _PythonInfo, target: Path, progress: Progress) -> None:
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    progress(f"creating the model environment from {python.executable} (once per machine)")
    result = subprocess.run([python.executable, "-m", "venv", str(staging)], capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise SetupError(
            f"{python.executable} -m venv failed: {result.stderr.strip().splitlines()[-1:]}; "
            f"install the venv module (apt-get install python{python.version}-venv)"
        )
    progress(f"installing {' '.join(MODEL_ENV_PACKAGES)} into the model environment")
    pip = [str(staging / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    result = subprocess.run([*pip, *MODEL_ENV_PACKAGES], capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise SetupError(f"installing the model environment's packages failed:\n{tail}")
    staging.rename(target)


def _build_requirements_env(base_env: Path, target: Path, requirements: Path, progress: Progress) -> None:
    """A copy of the base model environment with ``requirements`` installed on top (no index for the base)."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    progress(f"installing {requirements} into a model environment of its own (once per content of the file)")
    shutil.copytree(base_env, staging, symlinks=True)
    # numpy stays below 2 (the 2.51 stub's string inputs need it), whatever the file asks for.
    constraints = staging / "trtclient-constraints.txt"
    constraints.write_text("numpy<2\n")
    pip = [str(staging / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    result = subprocess.run(
        [*pip, "-r", str(requirements), "-c", str(constraints)],
        capture_output=True,
        text=True,
        cwd=requirements.parent,
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise SetupError(_requirements_failure(requirements, result.stdout + result.stderr))
    staging.rename(target)


def _requirements_failure(requirements: Path, output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    named = [line for line in lines if "No matching distribution" in line or "Could not find" in line]
    what = named[-1].strip() if named else (lines[-1].strip() if lines else "pip failed")
    tail = "\n".join(lines[-8:])
    return (
        f"the packages of {requirements} could not be installed into the model environment: {what}. "
        f"Fix the file (pip requirements syntax; --find-links lines point at local wheel folders)\n"
        f"pip's last lines:\n{tail}"
    )


def requirements_env(toolchain: Toolchain, requirements: Path, progress: Progress | None = None) -> Toolchain:
    """The toolchain with a model environment holding ``requirements`` too, cached by the file's hash."""
    report: Progress = progress or (lambda message: None)
    path = Path(requirements).expanduser().resolve()
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise SetupError(f"cannot read the requirements file {path}: {exc.strerror or exc}") from exc
    digest = hashlib.sha256(content).hexdigest()[:16]
    base = cache_dir()
    name = toolchain.model_env.name
    target = base / f"{name}-req-{digest}"
    with _locked(base / ".toolchain.lock"):
        if not (target / "bin" / "python").exists():
            _build_requirements_env(toolchain.model_env, target, path, report)
    return dataclasses.replace(toolchain, model_env=target)


def prepare(progress: Progress | None = None) -> Toolchain:
    """Return the embedded toolchain, building the cached parts that are missing."""
    report: Progress = progress or (lambda message: None)
    root, library_dir, wheel_version = locate_pytriton()
    stub_versions = {p.name for p in (root / "python_backend_stubs").iterdir() if p.is_dir()}
    base = cache_dir()
    with _locked(base / ".toolchain.lock"):
        python = _cached_python(base, stub_versions)
        backend_root = base / f"pytriton-{wheel_version}-py{python.version}" / "backends"
        if not (backend_root / "python" / "triton_python_backend_stub").exists():
            backend_root.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(backend_root, ignore_errors=True)
            _build_backend_dir(root, python, backend_root)
        model_env = base / f"model-env-py{python.version}-v{_MODEL_ENV_VERSION}"
        if not (model_env / "bin" / "python").exists():
            _build_model_env(python, model_env, report)
    return Toolchain(
        tritonserver=root / "bin" / "tritonserver",
        backend_dir=backend_root,
        library_dir=library_dir,
        model_env=model_env,
        server_version="2.51.0" if wheel_version == "0.7.0" else f"pytriton-{wheel_version}",
    )


def _cached_python(base: Path, stub_versions: set[str]) -> _PythonInfo:
    """The model Python, remembered in the cache so warm starts skip probing interpreters."""
    record = base / "model-python.json"
    configured = os.environ.get(MODEL_PYTHON_ENV, "")
    if record.exists():
        try:
            data = json.loads(record.read_text())
            if data.get("configured", "") == configured and Path(data["executable"]).exists():
                return _PythonInfo(data["executable"], data["version"], data["libdir"])
        except (ValueError, KeyError, OSError):
            pass
    info = find_model_python(stub_versions)
    record.write_text(
        json.dumps(
            {
                "configured": configured,
                "executable": info.executable,
                "version": info.version,
                "libdir": info.libdir,
            }
        )
    )
    return info
