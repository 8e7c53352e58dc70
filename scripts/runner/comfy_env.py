"""Where the real ComfyUI tree (0.3.75 unless `make test COMFYUI=...`) and its Python live.

`scripts/provision.sh` builds both and prints them; `make test` exports them as
EMOCAST_COMFY_CORE and EMOCAST_VENV.  Without them the ComfyUI tests skip, unless
EMOCAST_REQUIRE_COMFY=1 (set by `make test`), which turns the skip into a failure
so CI can never pass while silently skipping the server tests.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACK_FOLDER_NAME = "ComfyUI-EmoCAST"
PACK_PYTHON_MODULE = f"custom_nodes.{PACK_FOLDER_NAME}"


@dataclass(frozen=True)
class ComfyEnv:
    core: Path  # extracted ComfyUI tree (main.py, nodes.py, comfy/ ...)
    venv: Path  # virtualenv with torch 2.9.1 + ComfyUI's requirements + ours

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def use_cpu(self) -> bool:
        """`--cpu` unless EMOCAST_COMFY_DEVICE=gpu (for runs on a GPU machine)."""
        return os.environ.get("EMOCAST_COMFY_DEVICE", "cpu").lower() != "gpu"

    @property
    def version(self) -> tuple[int, ...]:
        """ComfyUI's version from the tree's comfyui_version.py, e.g. (0, 33, 0)."""
        text = (self.core / "comfyui_version.py").read_text()
        match = re.search(r'__version__\s*=\s*"(\d+(?:\.\d+)*)', text)
        if match is None:
            raise ValueError(f"no __version__ in {self.core / 'comfyui_version.py'}")
        return tuple(int(p) for p in match.group(1).split("."))

    def is_current_interpreter(self) -> bool:
        """True when this process runs on the venv's Python (needed in-process)."""
        return Path(sys.prefix).resolve() == self.venv.resolve()


def comfy_required() -> bool:
    return os.environ.get("EMOCAST_REQUIRE_COMFY", "") not in ("", "0", "false", "no")


def find_env() -> tuple[ComfyEnv | None, str]:
    """(env, "") when usable, else (None, reason)."""
    core = os.environ.get("EMOCAST_COMFY_CORE")
    venv = os.environ.get("EMOCAST_VENV")
    if not core or not venv:
        return None, ("EMOCAST_COMFY_CORE / EMOCAST_VENV are not set; run `make test` "
                      "(or export the two lines `bash scripts/provision.sh` prints)")
    env = ComfyEnv(Path(core), Path(venv))
    if not (env.core / "main.py").is_file() or not (env.core / "nodes.py").is_file():
        return None, f"EMOCAST_COMFY_CORE={core} is not a ComfyUI tree (no main.py/nodes.py)"
    if not env.python.exists():
        return None, f"EMOCAST_VENV={venv} has no bin/python"
    return env, ""


def link_pack(base_dir: Path, pack_dir: Path = REPO) -> Path:
    """Symlink the pack into `<base_dir>/custom_nodes/ComfyUI-EmoCAST`.

    The folder name matters: ComfyUI names the module, the `python_module` of
    every node and the workflow-template category after it.
    """
    custom_nodes = base_dir / "custom_nodes"
    custom_nodes.mkdir(parents=True, exist_ok=True)
    link = custom_nodes / PACK_FOLDER_NAME
    if link.is_symlink() or link.exists():
        if link.resolve() != pack_dir.resolve():
            raise RuntimeError(f"{link} already exists and points elsewhere")
        return link
    link.symlink_to(pack_dir.resolve(), target_is_directory=True)
    return link
