"""``serve --template-dir`` with a requirements file, and the mistakes it must explain in one message.

The packages come from wheels written by the test into a ``--find-links`` folder, with ``--no-index``, so
nothing is downloaded. Each requirements file is unique to its test, so each builds its own environment.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from trtclient.cli import main
from trtclient.errors import ServerStartError
from trtclient.server.launcher import EmbeddedTriton
from trtclient.server.paths import cache_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))
from tiny_wheel import write_wheel  # noqa: E402

pytestmark = pytest.mark.integration

USER_REPOSITORY = Path(__file__).resolve().parents[1] / "fakes" / "user_repository"


def user_copy(tmp_path: Path, first_line: str = "") -> Path:
    """The upstream-layout folder, with ``first_line`` put at the top of the preprocessing model."""
    folder = tmp_path / "templates"
    shutil.copytree(USER_REPOSITORY, folder)
    model = folder / "preprocessing" / "1" / "model.py"
    model.write_text(first_line + "\n" + model.read_text())
    return folder


def requirements_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "requirements.txt"
    # a comment makes the content, and so the cached environment, unique to this run
    path.write_text("\n".join([f"# {uuid.uuid4().hex}", "--no-index", "--find-links wheels", *lines]) + "\n")
    (tmp_path / "wheels").mkdir(exist_ok=True)
    return path


def environments(digest_of: Path) -> list[Path]:
    import hashlib

    digest = hashlib.sha256(digest_of.read_bytes()).hexdigest()[:16]
    return sorted(cache_dir().glob(f"model-env-*-req-{digest}*"))


def test_a_requirements_file_installs_what_the_models_import(
    tmp_path: Path, leftovers: Callable[[], set[str]]
) -> None:
    probe = f"probe_{uuid.uuid4().hex[:8]}"
    write_wheel(tmp_path / "wheels", probe, "1.0", 'GREETING = "installed from a local wheel"\n')
    requirements = requirements_file(tmp_path, [f"{probe}==1.0"])
    folder = user_copy(tmp_path, f"import {probe}  # must come from the requirements file")
    try:
        with EmbeddedTriton(profile="instant", template_dir=folder, requirements=requirements) as server:
            response = httpx.post(
                f"{server.url}/v2/models/ensemble/generate",
                json={"text_input": "What is machine learning?", "max_tokens": 4},
            )
            assert response.status_code == 200, response.text
        (env,) = environments(requirements)
        assert list(env.glob(f"lib/python*/site-packages/{probe}.py"))
        # a second start reuses the environment built for the same file content
        with EmbeddedTriton(profile="instant", template_dir=folder, requirements=requirements):
            assert environments(requirements) == [env]
    finally:
        for env in environments(requirements):
            shutil.rmtree(env)
    assert leftovers() == set()


def test_a_requirements_file_that_fails_to_install_names_the_file_and_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], leftovers: Callable[[], set[str]]
) -> None:
    requirements = requirements_file(tmp_path, ["absent-stand-in-package==1.0"])
    folder = user_copy(tmp_path)
    code = main(["serve", "--template-dir", str(folder), "--requirements", str(requirements)])
    err = capsys.readouterr().err
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("trtclient: error:")]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"trtclient: error: the packages of {requirements} could not be installed"), (
        err
    )
    assert "absent-stand-in-package==1.0" in errors[0], err
    assert "Traceback" not in err
    assert environments(requirements) == []  # no half-built environment is left for the next start
    assert leftovers() == set()


def test_a_model_that_fails_to_import_names_model_file_and_package_and_keeps_the_log(
    tmp_path: Path, leftovers: Callable[[], set[str]]
) -> None:
    folder = user_copy(tmp_path, "import absent_stand_in_module")
    with pytest.raises(ServerStartError) as caught:
        EmbeddedTriton(profile="instant", template_dir=folder).start()
    message = str(caught.value)
    first = message.splitlines()[0]
    model_file = folder / "preprocessing" / "1" / "model.py"
    assert (
        f"model 'preprocessing' failed to import the package 'absent_stand_in_module' ({model_file}, line 1)"
        in first
    )
    assert "list absent_stand_in_module in a --requirements file" in first
    assert "--- last lines of the server log ---" in message
    log_path = Path(first.rsplit("(log: ", 1)[1].rstrip(")"))
    assert "absent_stand_in_module" in log_path.read_text()  # the log the message points to is still there
    assert [entry.name for entry in log_path.parent.iterdir()] == [log_path.name]  # and only the log
    assert leftovers() == set()
    shutil.rmtree(log_path.parent)
