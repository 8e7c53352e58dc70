"""`make demo`: run an example EmoCAST workflow in a real ComfyUI server.

    python -m scripts.runner.demo [WORKFLOW.json] [--models DIR | --placeholders] [--keep-running]

Starts a real ComfyUI (from EMOCAST_COMFY_CORE / EMOCAST_VENV, which `make demo`
exports) with `.cache/demo/` as its base directory and the pack symlinked in,
copies `workflows/input/*` into its input folder, converts the UI workflow
with the live /object_info, runs it and prints where the outputs are.  Exit
status: 0 ran, 1 failed, 2 nothing to run (no workflow yet, no ComfyUI).

By default it runs workflows/emocast_demo.json on the embedded demo model
(demo_model/, a ComfyUI models/ layout): a tiny EmoCAST the pack trained on
drawn faces, which really talks, and says that it is a demo.  `--models DIR`
uses a real models/ folder instead (e.g. with workflows/emocast_basic.json and
the official weights); `--placeholders` builds untrained stand-ins in the
official layouts (scripts/runner/placeholder_models.py), runs at a CPU-sized
resolution and step count, and says that the picture is noise.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from training.demo import MODEL_FILE

from . import placeholder_models
from .comfy_env import REPO, find_env
from .comfy_server import ComfyError, ComfyServer, ExecutionFailed, PromptRejected
from .workflow import WorkflowError, load_workflow

DEFAULT_WORKFLOW = REPO / "workflows" / "emocast_demo.json"
DEMO_MODELS = REPO / "demo_model"
DEMO_CHECKPOINT = DEMO_MODELS / MODEL_FILE
DEFAULT_BASE = REPO / ".cache" / "demo"


def _link_models(base: Path, models: Path) -> None:
    target = base / "models"
    if target.is_symlink():
        target.unlink()
    elif target.exists():
        if any(target.iterdir()):
            raise SystemExit(f"{target} is a non-empty folder; move it away to use --models {models}")
        target.rmdir()
    target.symlink_to(models.resolve(), target_is_directory=True)


def cpu_sized(graph: dict, steps: int, resolution: int, audio: str | None = None) -> dict:
    """An API graph with CPU-friendly sampler steps, frame size (and optionally audio file), in place."""
    for node in graph.values():
        kind, inputs = node["class_type"], node["inputs"]
        if kind in ("EmoCASTSampler", "EmoCASTSamplerToVideo"):
            inputs["steps"] = steps
        elif kind == "EmoCASTPortraitPrep":
            inputs["resolution"] = resolution
        elif kind == "LoadAudio" and audio:
            inputs["audio"] = audio
    return graph


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.runner.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("workflow", nargs="?", default=str(DEFAULT_WORKFLOW), help="UI-format workflow json")
    parser.add_argument("--base-dir", default=str(DEFAULT_BASE), help="ComfyUI --base-directory (kept)")
    parser.add_argument("--models", help="an existing ComfyUI models/ folder to use (symlinked; default: demo_model/)")
    parser.add_argument("--placeholders", action="store_true",
                        help="untrained stand-ins in the official layouts (the video is noise)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the run")
    parser.add_argument("--keep-running", action="store_true", help="leave the server up until Ctrl-C")
    parser.add_argument("--steps", type=int, default=4, help="sampler steps with placeholder weights")
    parser.add_argument("--resolution", type=int, default=128, help="frame size with placeholder weights")
    args = parser.parse_args(argv)

    workflow_path = Path(args.workflow)
    if not workflow_path.is_file():
        print(f"demo: the demo workflow {workflow_path} is not available yet. The EmoCAST nodes and "
              "their example workflow are still being built, so there is nothing to run. "
              "Nothing was started.", file=sys.stderr)
        return 2
    env, reason = find_env()
    if env is None:
        print(f"demo: {reason}", file=sys.stderr)
        return 2

    base = Path(args.base_dir)
    base.mkdir(parents=True, exist_ok=True)
    placeholders = args.placeholders and not args.models
    if placeholders:
        print("demo: building placeholder weights (untrained, in the official file layouts); "
              "THE VIDEO WILL BE NOISE, NOT A FACE. Use --models with the real files for a real result.")
        _link_models(base, placeholder_models.build(placeholder_models.default_cache(), env.core))
    elif args.models:
        _link_models(base, Path(args.models))
    else:
        if not DEMO_CHECKPOINT.is_file():
            print(f"demo: the demo model {DEMO_CHECKPOINT} is missing (python -m training.demo.build makes it). "
                  "Nothing was started.", file=sys.stderr)
            return 2
        print("demo: models from demo_model/: the DEMO model, a 5 M-parameter EmoCAST the pack trained on drawn "
              "64x64 faces (demo_model/README.md). It is not the official weights and does not animate photos.")
        _link_models(base, DEMO_MODELS)
    inputs = REPO / "workflows" / "input"
    if inputs.is_dir():
        (base / "input").mkdir(exist_ok=True)
        for src in inputs.iterdir():
            if src.is_file():
                shutil.copyfile(src, base / "input" / src.name)

    server = ComfyServer(env, base)
    server.log_path.unlink(missing_ok=True)
    version = ".".join(map(str, env.version))
    print(f"demo: starting ComfyUI {version} ({'CPU' if env.use_cpu else 'GPU'}), base {base}, log {server.log_path}")
    try:
        with server:
            print(f"demo: server at {server.url}; running {workflow_path.name}")
            workflow = load_workflow(workflow_path)
            graph = server.ui_to_api(workflow)
            if placeholders:
                cpu_sized(graph, args.steps, args.resolution)
                print(f"demo: placeholder run at {args.resolution}x{args.resolution}, {args.steps} steps per clip")
            started = time.monotonic()
            entry = server.run(graph, timeout=args.timeout, workflow=workflow)
            print(f"demo: finished in {time.monotonic() - started:.1f} s")
            items = server.output_items(entry)
            if not items:
                print("demo: the workflow ran but saved no files")
            for item in items:
                print(f"demo: output from node {item['node']}: {server.output_path(item)}")
            if args.keep_running:
                print(f"demo: server still up at {server.url} (Ctrl-C to stop)")
                try:
                    while server.alive():
                        time.sleep(1)
                except KeyboardInterrupt:
                    pass
    except (WorkflowError, PromptRejected, ExecutionFailed) as e:
        print(f"demo: {workflow_path.name} did not run:\n{e}", file=sys.stderr)
        return 1
    except ComfyError as e:
        print(f"demo: ComfyUI failed:\n{e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
