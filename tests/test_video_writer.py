"""emocast_core.video: mp4 writing (H.264 + AAC via PyAV), read back and checked."""
import json
import math
import os

import numpy as np
import pytest
import torch

from emocast_core.video import Mp4Stream, read_mp4, write_mp4

FPS = 25
BARS = np.array([[1, 1, 1], [1, 1, 0], [0, 1, 1], [0, 1, 0],
                 [1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0]], np.float32) * 0.75 + 0.1


def colour_bars(t=37, h=48, w=64):
    """Eight vertical bars sliding 2 px per frame, with a per-frame brightness
    ramp so a dropped, duplicated or reordered frame changes the means."""
    x = np.arange(w)
    frames = np.empty((t, h, w, 3), np.float32)
    for i in range(t):
        idx = ((x + 2 * i) * len(BARS) // w) % len(BARS)
        frames[i] = BARS[idx][None] * (0.8 + 0.2 * i / max(t - 1, 1))
    return torch.from_numpy(frames)


def tone(freq, seconds, sr, amp=0.5):
    return (amp * np.sin(2 * np.pi * freq * np.arange(round(seconds * sr)) / sr)).astype(np.float32)


def peak_hz(x, sr):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[int(np.argmax(spectrum))]


def assert_close_video(decoded, frames):
    frames = np.asarray(frames)
    assert decoded.frame_count == frames.shape[0]
    got = decoded.frames[:, :frames.shape[1], :frames.shape[2]]
    # Lossy H.264 + 4:2:0 chroma: per-frame colour means stay within ~2.5 %,
    # and luma (full resolution) is close pixel by pixel.
    np.testing.assert_allclose(got.mean(axis=(1, 2)), frames.mean(axis=(1, 2)), atol=0.025)
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    assert np.abs(got @ luma - frames @ luma).mean() < 0.02  # a one-frame shift gives ~0.05


def test_roundtrip_mono_16k(tmp_path):
    frames = colour_bars()
    audio = tone(440, 1.48, 16000)
    meta = {"prompt": {"1": {"class_type": "EmptyImage", "inputs": {}}}, "workflow": {"nodes": []}, "note": "hi"}
    out = write_mp4(tmp_path / "clip.mp4", frames, FPS, audio=torch.from_numpy(audio)[None],
                    sample_rate=16000, metadata=meta)
    assert out == str(tmp_path / "clip.mp4")
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]

    v = read_mp4(out)
    assert (v.width, v.height, v.fps) == (64, 48, FPS)
    assert v.duration == pytest.approx(37 / FPS, abs=1 / FPS)
    assert_close_video(v, frames)
    assert v.sample_rate == 16000 and v.audio.shape[0] == 1
    assert abs(v.audio_duration - v.video_duration) <= 1 / FPS
    assert peak_hz(v.audio[0], 16000) == pytest.approx(440, abs=3)
    # Read back the way core does it: every non-str value is JSON.
    assert json.loads(v.metadata["prompt"]) == meta["prompt"]
    assert json.loads(v.metadata["workflow"]) == meta["workflow"]
    assert v.metadata["note"] == "hi"


def test_roundtrip_stereo_44k_numpy(tmp_path):
    frames = colour_bars().numpy()
    audio = np.stack([tone(440, 1.48, 44100), tone(660, 1.48, 44100)])
    v = read_mp4(write_mp4(tmp_path / "s.mp4", frames, FPS, audio=audio, sample_rate=44100, quality=23,
                           preset="veryfast"))
    assert_close_video(v, frames)
    assert v.sample_rate == 44100 and v.audio.shape[0] == 2
    assert abs(v.audio_duration - v.video_duration) <= 1 / FPS
    assert peak_hz(v.audio[0], 44100) == pytest.approx(440, abs=3)  # channel order kept
    assert peak_hz(v.audio[1], 44100) == pytest.approx(660, abs=3)


@pytest.mark.parametrize("seconds", [0.5, 3.0])
def test_audio_padded_or_trimmed_to_video(tmp_path, seconds):
    v = read_mp4(write_mp4(tmp_path / "a.mp4", colour_bars(t=25), FPS,
                           audio=tone(440, seconds, 16000), sample_rate=16000))
    assert v.video_duration == pytest.approx(1.0)
    assert abs(v.audio_duration - 1.0) <= 1 / FPS
    if seconds < 1:  # the padding is silence
        assert np.abs(v.audio[0, 12000:]).max() < 0.02


def test_unusual_rates_and_channels(tmp_path):
    # 22 kHz is no AAC rate: PyAV resamples to 22.05 kHz; 3 channels -> mono.
    audio = np.stack([tone(440, 1, 22000)] * 3)
    v = read_mp4(write_mp4(tmp_path / "r.mp4", colour_bars(t=30), 29.97, audio=audio, sample_rate=22000))
    assert v.fps == pytest.approx(29.97) and v.frame_count == 30
    assert v.sample_rate == 22050 and v.audio.shape[0] == 1
    assert abs(v.audio_duration - v.video_duration) <= 1 / 29.97
    assert peak_hz(v.audio[0], 22050) == pytest.approx(440, abs=3)


@pytest.mark.parametrize("h,w", [(47, 65), (1, 1), (48, 33)])
def test_odd_sizes_padded_by_edge(tmp_path, h, w):
    frames = colour_bars(t=5, h=h, w=w)
    v = read_mp4(write_mp4(tmp_path / "odd.mp4", frames, FPS))
    assert (v.height, v.width) == (h + h % 2, w + w % 2)
    assert_close_video(v, frames)
    if w % 2:  # the added column repeats the last one
        assert np.abs(v.frames[:, :, -1] - v.frames[:, :, -2]).mean() < 0.05


def test_no_audio_and_uint8_frames(tmp_path):
    frames = (colour_bars(t=10) * 255).round().to(torch.uint8)
    v = read_mp4(write_mp4(tmp_path / "n.mp4", frames, 12.5, quality=0))
    assert v.audio is None and v.audio_samples == 0
    assert v.frame_count == 10 and v.fps == 12.5
    assert np.abs(v.frames * 255 - frames.numpy()).max() <= 3  # CRF 0: lossless up to colour conversion


class Stop(Exception):
    pass


def test_interrupted_encode_leaves_nothing(tmp_path):
    seen = []

    def callback(done, total):
        seen.append((done, total))
        if done == 5:
            raise Stop("interrupted")

    with pytest.raises(Stop):
        write_mp4(tmp_path / "cut.mp4", colour_bars(), FPS, audio=tone(440, 1.48, 16000),
                  sample_rate=16000, frame_callback=callback)
    assert seen == [(i, 37) for i in range(1, 6)]
    assert os.listdir(tmp_path) == []


def test_failed_encode_keeps_existing_file(tmp_path):
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"old")

    def callback(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_mp4(target, colour_bars(t=3), FPS, frame_callback=callback)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["keep.mp4"]


GOOD = colour_bars(t=4, h=8, w=8)


@pytest.mark.parametrize("kwargs,match", [
    (dict(frames=GOOD[0]), "frames must have shape"),
    (dict(frames=GOOD[..., :2]), "frames must have shape"),
    (dict(frames=GOOD[:0]), "frames is empty"),
    (dict(frames=[[0.0]]), "frames must be a torch tensor"),
    (dict(frames=GOOD.to(torch.int32)), "frames must be float"),
    (dict(frames=torch.where(torch.arange(4)[:, None, None, None] == 3, math.nan, GOOD)), "frames contain NaN"),
    (dict(fps=0), "fps must be a positive"),
    (dict(fps=-25), "fps must be a positive"),
    (dict(fps=math.nan), "fps must be a positive"),
    (dict(fps="fast"), "fps must be a number"),
    (dict(audio=np.zeros((1, 0), np.float32), sample_rate=16000), "audio is empty"),
    (dict(audio=np.zeros((1, 1, 100), np.float32), sample_rate=16000), r"audio must have shape \[C,N\]"),
    (dict(audio=np.full((1, 100), np.nan, np.float32), sample_rate=16000), "audio contains NaN"),
    (dict(audio=np.zeros((1, 100), np.float32)), "sample_rate is required"),
    (dict(audio=np.zeros((1, 100), np.float32), sample_rate=0), "sample_rate must be a positive"),
    (dict(quality=52), "quality is an H.264 CRF"),
    (dict(quality=19.5), "quality is an H.264 CRF"),
    (dict(preset="turbo"), "preset must be one of"),
    (dict(metadata={1: "x"}), "metadata keys"),
])
def test_bad_inputs_raise_before_writing(tmp_path, kwargs, match):
    args = dict(frames=GOOD, fps=FPS) | kwargs
    with pytest.raises(ValueError, match=match):
        write_mp4(tmp_path / "bad.mp4", args.pop("frames"), args.pop("fps"), **args)
    assert os.listdir(tmp_path) == []


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_mp4(tmp_path / "nope" / "x.mp4", GOOD, FPS)


def test_a_video_written_piece_by_piece_equals_the_one_shot_file(tmp_path):
    frames = colour_bars(t=37)
    audio = tone(440, 37 / FPS, 16000)[None]
    whole = read_mp4(write_mp4(tmp_path / "whole.mp4", frames, FPS, audio=audio, sample_rate=16000))
    done = []
    with Mp4Stream(tmp_path / "pieces.mp4", FPS, 64, 48, total_frames=37, audio=audio, sample_rate=16000,
                   frame_callback=lambda n, total: done.append((n, total))) as video:
        for start in range(0, 37, 16):  # clips of 16, 16 and 5 frames, uint8 like the pipeline's
            video.write((frames[start:start + 16] * 255).round().to(torch.uint8))
    pieces = read_mp4(tmp_path / "pieces.mp4")
    assert done[-1] == (37, 37) and len(done) == 37
    np.testing.assert_array_equal(pieces.frames, whole.frames)
    np.testing.assert_array_equal(pieces.audio, whole.audio)


def test_a_stream_that_stops_early_or_fails_leaves_nothing(tmp_path):
    frames = colour_bars(t=20)
    with pytest.raises(ValueError, match="got 16 of 20 frames; nothing was saved"):
        with Mp4Stream(tmp_path / "short.mp4", FPS, 64, 48, total_frames=20) as video:
            video.write(frames[:16])
    with pytest.raises(RuntimeError, match="stop"):
        with Mp4Stream(tmp_path / "failed.mp4", FPS, 64, 48, total_frames=20) as video:
            video.write(frames[:16])
            raise RuntimeError("stop")
    with Mp4Stream(tmp_path / "sizes.mp4", FPS, 64, 48, total_frames=20) as video:
        with pytest.raises(ValueError, match="frames are 32x48, this video is 64x48"):
            video.write(frames[:4, :, :32])
        with pytest.raises(ValueError, match="more than the 20 announced"):
            video.write(torch.cat([frames, frames[:1]]))
        video.write(frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sizes.mp4"]
    with pytest.raises(ValueError, match="audio needs total_frames"):
        Mp4Stream(tmp_path / "x.mp4", FPS, 64, 48, audio=np.zeros((1, 100), np.float32), sample_rate=16000)
