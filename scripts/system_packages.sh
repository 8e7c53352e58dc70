#!/usr/bin/env bash
# Debian packages the tests and demo use: espeak-ng (real speech for test and demo
# audio) and ffmpeg (ffprobe for media checks).  Installed when missing and we are
# root; otherwise say what to install (the tests that need them skip with a reason).
set -euo pipefail
packages=(espeak-ng ffmpeg)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "[system] installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "[system] missing ${missing[*]}: install them (sudo apt-get install ${missing[*]}) for the full test suite" >&2
fi
