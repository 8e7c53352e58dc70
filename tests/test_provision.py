"""`make test COMFYUI=...` (scripts/provision.sh): a ComfyUI that cannot be used is refused in words.

The good paths (0.3.75, and 0.33.0 in CI) are exercised by every run of the suite itself.
"""
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def provision(arg: str, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    environment = dict(os.environ, EMOCAST_CACHE=str(tmp_path / "cache"), **env)
    return subprocess.run(["bash", str(REPO / "scripts" / "provision.sh"), arg], capture_output=True, text=True,
                          env=environment, timeout=120)


def test_a_version_without_its_archive_says_where_it_looked(tmp_path):
    run = provision("9.9.9", tmp_path, EMOCAST_COMFY_ARCHIVES=str(tmp_path / "archives"))
    assert run.returncode != 0 and run.stdout == ""
    assert f"no {tmp_path / 'archives'}/comfyui-9.9.9.tar.xz" in run.stderr and "EMOCAST_COMFY_ARCHIVES" in run.stderr


def test_a_path_that_is_not_there(tmp_path):
    run = provision(str(tmp_path / "nowhere"), tmp_path)
    assert run.returncode != 0 and "no such file or folder" in run.stderr


def test_a_folder_that_is_not_a_current_comfyui(tmp_path):
    old = tmp_path / "ComfyUI"
    old.mkdir()
    (old / "main.py").write_text("")
    run = provision(str(old), tmp_path)
    assert run.returncode != 0 and "not a ComfyUI source folder with the V3 API" in run.stderr
    assert not list((tmp_path / "cache").glob("venv-*"))  # nothing was built for it


def test_an_archive_checked_against_its_sums(tmp_path):
    archives = tmp_path / "archives"
    archives.mkdir()
    (archives / "comfyui-1.2.3.tar.xz").write_bytes(b"not the archive")
    (archives / "SHA256SUMS").write_text("0" * 64 + "  comfyui-1.2.3.tar.xz\n")
    run = provision("1.2.3", tmp_path, EMOCAST_COMFY_ARCHIVES=str(archives))
    assert run.returncode != 0 and "does not match" in run.stderr and "SHA256SUMS" in run.stderr
