"""Load the real ComfyUI code (0.3.75 or a newer tree) and the pack into *this* Python process.

ComfyUI has a top-level module called `nodes`, and so
does this repository (the folder `nodes/`); the repo root is on sys.path for
the unit tests.  So the ComfyUI tree is put *first* on sys.path, and the pack
is loaded the way the server loads it: from a symlink named `ComfyUI-EmoCAST`
in a temporary `custom_nodes/`, through `nodes.load_custom_node`, which imports
it under its own (path-derived) module name.  Unit tests that import
`emocast_core` keep working in the same process: nothing named `emocast_core`
exists in the ComfyUI tree.

Loading is once per process (ComfyUI keeps global state); `load()` returns
the same object on later calls.
"""
from __future__ import annotations

import asyncio
import inspect
import os
import sys
from pathlib import Path
from typing import Any

from scripts.runner.comfy_env import PACK_FOLDER_NAME, PACK_PYTHON_MODULE, REPO, ComfyEnv, link_pack

# Modules that must come from the ComfyUI tree, not from a stub or from this repo.
_COMFY_MODULES = ("nodes", "folder_paths", "utils", "comfy", "comfy.cli_args", "comfy_api",
                  "comfy.model_management", "server")

_loaded: "ComfyInProcess | None" = None


class ComfyInProcess:
    """Handle on the in-process ComfyUI: `nodes`, `folder_paths`, the pack module."""

    def __init__(self, env: ComfyEnv, base_dir: Path, nodes_module, folder_paths_module, pack_module):
        self.env = env
        self.base_dir = base_dir
        self.nodes = nodes_module
        self.folder_paths = folder_paths_module
        self.pack = pack_module  # the package ComfyUI imported from custom_nodes/ComfyUI-EmoCAST
        self._extras: set[str] = set()

    @property
    def NODE_CLASS_MAPPINGS(self) -> dict[str, Any]:  # noqa: N802 - ComfyUI's name
        return self.nodes.NODE_CLASS_MAPPINGS

    @property
    def models_dir(self) -> Path:
        return Path(self.folder_paths.models_dir)

    def pack_node_ids(self) -> set[str]:
        """Ids that ComfyUI registered for the pack (RELATIVE_PYTHON_MODULE)."""
        return {k for k, cls in self.NODE_CLASS_MAPPINGS.items()
                if getattr(cls, "RELATIVE_PYTHON_MODULE", None) == PACK_PYTHON_MODULE}

    def declared_node_ids(self) -> set[str]:
        """Ids the pack declares in `nodes/__init__.py` NODE_CLASSES."""
        return {cls.GET_SCHEMA().node_id for cls in self.pack.nodes.NODE_CLASSES}

    def node_class(self, node_id: str):
        try:
            return self.NODE_CLASS_MAPPINGS[node_id]
        except KeyError:
            raise KeyError(f"node {node_id!r} is not registered in-process; pack nodes: "
                           f"{sorted(self.pack_node_ids())}") from None

    def load_core_extra(self, name: str) -> None:
        """Register one built-in `comfy_extras/<name>.py` (e.g. "nodes_video").

        Only `nodes.py`'s classes are there by default; this loads an extra file
        the way the server does, without loading all ~80 of them.
        """
        if name in self._extras:
            return
        path = self.env.core / "comfy_extras" / f"{name.removesuffix('.py')}.py"
        if not path.is_file():
            raise FileNotFoundError(f"no comfy_extras/{path.name} in {self.env.core}")
        ok = asyncio.run(self.nodes.load_custom_node(str(path), module_parent="comfy_extras"))
        if not ok:
            raise RuntimeError(f"ComfyUI could not load {path} (see the log output above)")
        self._extras.add(name)

    def run_node(self, node_id: str, *, hidden: dict | None = None, inference_mode: bool = True,
                 **inputs) -> Any:
        """Execute one node like the executor does; returns its io.NodeOutput (V3)
        or the raw return value (V1).

        V3: validate the class, clone it with `hidden` (keys like "unique_id",
        "prompt"), call EXECUTE_NORMALIZED(_ASYNC) on the locked clone, under
        `torch.inference_mode()` as every prompt runs (pass inference_mode=False
        to see what happens without it).  No caching, no list mapping.
        """
        import torch
        from comfy_api.internal import make_locked_method_func

        cls = self.node_class(node_id)
        if hasattr(cls, "PREPARE_CLASS_CLONE"):
            cls.VALIDATE_CLASS()
            clone = cls.PREPARE_CLASS_CLONE(_clone_argument(cls, hidden or {}))
            func = make_locked_method_func(cls, cls.FUNCTION, clone)
        else:
            func = getattr(cls(), cls.FUNCTION)
        with torch.inference_mode(inference_mode):
            result = func(**inputs)
            if inspect.isawaitable(result):
                result = asyncio.run(result)
        return result


def _clone_argument(cls, hidden: dict) -> dict:
    """What PREPARE_CLASS_CLONE takes: the hidden values up to ComfyUI 0.6, from
    0.7 on a V3Data dict that holds them under "hidden_inputs"."""
    params = inspect.signature(cls.PREPARE_CLASS_CLONE).parameters
    if "v3_data" in params:
        return {"hidden_inputs": hidden}
    return hidden


def _check_not_stubbed(core: Path) -> None:
    core = core.resolve()
    for name in _COMFY_MODULES:
        mod = sys.modules.get(name)
        if mod is None:
            continue
        file = getattr(mod, "__file__", None)
        places = [file] if file else list(getattr(mod, "__path__", []))  # `comfy` is a namespace package
        if not places or not all(core in Path(p).resolve().parents for p in places):
            raise RuntimeError(
                f"sys.modules[{name!r}] comes from {places or mod!r}, not the ComfyUI tree {core}. A test "
                "stubbed or imported it (this repo's `nodes/` must never be imported as a top-level "
                "`nodes`); use monkeypatch.setitem(sys.modules, ...) so stubs are undone, or the "
                "comfy_inprocess fixture instead of stubs.")


def load(env: ComfyEnv, base_dir: Path, pack_dir: Path = REPO) -> ComfyInProcess:
    """Import ComfyUI (CPU unless EMOCAST_COMFY_DEVICE=gpu) and the pack, once."""
    global _loaded
    if _loaded is not None:
        return _loaded
    if not env.is_current_interpreter():
        raise RuntimeError(f"in-process ComfyUI needs the venv's Python ({env.python}); "
                           f"this is {sys.executable}")
    _check_not_stubbed(env.core)

    base_dir = Path(base_dir)
    for sub in ("models", "input", "output", "temp", "user"):
        (base_dir / sub).mkdir(parents=True, exist_ok=True)
    link = link_pack(base_dir, pack_dir)

    core = str(env.core)
    if core in sys.path:
        sys.path.remove(core)
    sys.path.insert(0, core)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import comfy.options
    comfy.options.enable_args_parsing(False)
    from comfy.cli_args import args
    args.cpu = env.use_cpu
    args.base_directory = str(base_dir)  # read by folder_paths at import
    args.disable_auto_launch = True

    # ComfyUI's nodes.py puts `<core>/comfy` first on sys.path, after which a
    # plain `import utils` would find comfy/utils.py instead of the `utils`
    # package (server.py needs utils.install_util).  main.py imports the package
    # before nodes; so do we.
    import utils.install_util  # noqa: F401
    import folder_paths
    import nodes

    if os.path.abspath(folder_paths.base_path) != os.path.abspath(base_dir):
        raise RuntimeError(f"folder_paths was imported before the base directory was set "
                           f"(base_path={folder_paths.base_path})")
    _check_not_stubbed(env.core)

    module_path = str(link)
    ok = asyncio.run(nodes.load_custom_node(module_path, module_parent="custom_nodes"))
    if not ok:
        raise RuntimeError(f"ComfyUI could not load the pack from {module_path}; "
                           "its traceback was logged just above")
    # load_custom_node registers the package under its path, dots replaced.
    pack = sys.modules[module_path.replace(".", "_x_")]
    _loaded = ComfyInProcess(env, base_dir, nodes, folder_paths, pack)
    return _loaded


__all__ = ["ComfyInProcess", "load", "PACK_FOLDER_NAME"]
