"""Shared test set-up: single-threaded torch, offline hubs, the parity folder,
and the real-ComfyUI fixtures (`comfy_server`, `comfy_inprocess`; see
tests/harness/README.md)."""
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

# Two cores and several processes (the ComfyUI server among them): more than one
# torch thread per process oversubscribes the machine and slows tests 100x.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """Folder of the official-implementation fixtures: tests/fixtures/parity, or EMOCAST_PARITY_DIR."""
    path = Path(os.environ.get("EMOCAST_PARITY_DIR") or REPO / "tests" / "fixtures" / "parity")
    if not (path / "expected.safetensors").is_file():
        pytest.fail(f"parity fixtures not found in {path}: EMOCAST_PARITY_DIR must name a folder "
                    "holding the files of tests/fixtures/parity")
    return path


# --------------------------------------------------------------------------
# Real ComfyUI (tests/harness).  Imported here, at collection time,
# before any fixture puts the ComfyUI tree (which has its own `tests` package)
# on sys.path.
import tests as _tests_pkg  # noqa: E402

if Path(list(_tests_pkg.__path__)[0]).resolve() != REPO / "tests":
    raise ImportError(f"`tests` resolves to {list(_tests_pkg.__path__)}, not {REPO / 'tests'}: "
                      "another package named `tests` shadows ours on sys.path")

from tests.harness import comfy_inprocess as _comfy_inprocess  # noqa: E402
from scripts.runner.comfy_env import ComfyEnv, comfy_required, find_env  # noqa: E402
from scripts.runner.comfy_server import ComfyServer  # noqa: E402


def pytest_report_header(config):
    env, reason = find_env()
    if env is None:
        return f"ComfyUI: none ({reason})"
    return f"ComfyUI: {'.'.join(map(str, env.version))} at {env.core}"


def pytest_collection_modifyitems(config, items):
    # Every test that reaches ComfyUI through a fixture carries the `comfyui` mark,
    # so `-m comfyui` selects exactly what to rerun against another ComfyUI.
    for item in items:
        if "comfy_env" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.comfyui)


def _unavailable(reason: str):
    """Skip, or fail under `make test` (EMOCAST_REQUIRE_COMFY=1), where ComfyUI must run."""
    if comfy_required():
        pytest.fail(f"ComfyUI is required here (EMOCAST_REQUIRE_COMFY=1) but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def comfy_env() -> ComfyEnv:
    """The ComfyUI tree and venv from EMOCAST_COMFY_CORE / EMOCAST_VENV."""
    env, reason = find_env()
    if env is None:
        _unavailable(reason)
    return env


@pytest.fixture(scope="session")
def comfy_server(comfy_env, tmp_path_factory) -> ComfyServer:
    """A real ComfyUI server (CPU, one thread) with the pack symlinked in, for the session."""
    server = ComfyServer(comfy_env, tmp_path_factory.mktemp("comfy_server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def comfy_inprocess(comfy_env, tmp_path_factory) -> _comfy_inprocess.ComfyInProcess:
    """ComfyUI's `nodes`/`folder_paths` and the pack, imported into this process (once)."""
    if not comfy_env.is_current_interpreter():
        _unavailable(f"in-process ComfyUI needs pytest to run on {comfy_env.python}")
    return _comfy_inprocess.load(comfy_env, tmp_path_factory.mktemp("comfy_inprocess"))
