"""`--mode stream`: memory of a whole video streamed into an mp4, for several audio lengths side by side.

Each length runs in a fresh process.  There the inputs are made first (what the
nodes upstream hold: the audio to mux and its features), then the peak is reset
(Linux's /proc/self/clear_refs) and the video is generated and written, pasted back
into a larger picture when asked.  Reported per length: the memory the inputs
take, and the peak while generating; the growth from the shortest length shows
what, if anything, grows with the audio.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import torch

from ..video import Mp4Stream
from ..weights import DTYPES
from .common import synchronize
from .pipeline import SAMPLE_RATE, load_pipeline, random_inputs


def _rss_gb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in GiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**20
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current RSS


def measure(config: str, checkpoint: str | None, device: str, dtype: str, size: int, seconds: float, steps: int,
            source: tuple[int, int] | None) -> dict:
    """One length, in this process."""
    device, torch_dtype = torch.device(device), DTYPES[dtype]
    pipe, cfg = load_pipeline(config, checkpoint, device, torch_dtype)
    before_inputs = _rss_gb("VmRSS")
    portrait, audio, emotion = random_inputs(cfg, size, seconds, source)
    inputs = _rss_gb("VmRSS") - before_inputs
    width, height = source or (size, size)
    wave = audio.source_audio["waveform"][0]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as folder:
        _reset_peak()
        start_rss, t0 = _rss_gb("VmRSS"), time.perf_counter()
        with Mp4Stream(os.path.join(folder, "bench.mp4"), audio.fps, width, height, total_frames=audio.num_frames,
                       audio=wave, sample_rate=SAMPLE_RATE, preset="ultrafast") as video:
            for clip in pipe.clips(portrait, audio, emotion, steps=steps):
                frames = clip.float() / 255
                video.write(portrait.paste_back(frames) if source else frames)
        synchronize(device)
        elapsed = time.perf_counter() - t0
    result = {"seconds_audio": seconds, "frames": audio.num_frames, "frame_size": [width, height],
              "inputs_gb": round(inputs, 4), "rss_before_gb": round(start_rss, 4),
              "peak_gb": round(_rss_gb("VmHWM"), 4), "total_s": round(elapsed, 1)}
    if device.type == "cuda":
        result["peak_vram_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    return result


def compare(lengths: list[float], argv: list[str]) -> dict:
    """Each length in its own process (`argv`: this run's other options); the peaks side by side."""
    runs = []
    for seconds in lengths:
        cmd = [sys.executable, "-m", "emocast_core.bench", *argv, "--seconds", str(seconds), "--json"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    first = runs[0]
    for run in runs:
        run["peak_over_shortest"] = round(run["peak_gb"] / first["peak_gb"] - 1, 4)
        run["peak_during_generation_gb"] = round(run["peak_gb"] - run["rss_before_gb"], 4)
    return {"mode": "stream", "runs": runs}
