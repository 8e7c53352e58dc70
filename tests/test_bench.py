"""The benchmark entry point runs and reports what it promises (timings are not asserted)."""
import json

from emocast_core import bench


def test_bench_prints_its_measurements(capsys):
    assert bench.main(["--config", "reduced", "--frames", "2", "--steps", "1", "--repeats", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"] == "reduced" and result["frames"] == 2
    for key in ("cfg_step_s", "clip_s", "s_per_frame", "peak_rss_gb"):
        assert result[key] > 0
    assert abs(result["params_m"] - 94.8) < 0.1  # the parity README's count for the reduced Net


def test_bench_pipeline_mode(capsys):
    args = ["--mode", "pipeline", "--config", "tiny", "--seconds", "0.2", "--steps", "1", "--json"]
    assert bench.main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mode"] == "pipeline" and result["frames"] == 5  # ceil(0.2 s x 25 fps)
    assert result["s_per_frame"] > 0 and result["peak_rss_gb"] > 0
    assert (result["generated_frames"], result["padding_frames"]) == (16, 11)  # one whole clip
    cold = result["cold_clip"]
    assert cold["denoise_steps"] > 0 and cold["decode"] > 0 and cold["reference"] > 0 and cold["write"] > 0
    assert cold["encode"] > 0  # the reference's latent; a single clip re-encodes nothing after it


def test_demo_stage_bench_times_the_asked_stages(capsys):
    from training.demo import bench as demo_bench

    argv = ["--device", "cpu", "--latent-factor", "4", "--steps", "1", "--stage", "lipsync",
            "--block-out-channels", "32", "64", "64", "64"]
    assert demo_bench.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["stage"] for line in lines] == ["lipsync"]
    result = json.loads(lines[0])
    assert result["latent_factor"] == 4 and result["batch"] == 4 and result["s_per_step"] > 0
    assert result["block_out_channels"] == [32, 64, 64, 64]


def test_bench_stream_mode_compares_lengths_in_fresh_processes(capsys):
    args = ["--mode", "stream", "--config", "tiny", "--seconds", "0.3", "0.7", "--steps", "1", "--json"]
    assert bench.main(args) == 0
    result = json.loads(capsys.readouterr().out)
    short, long = result["runs"]
    assert (short["frames"], long["frames"]) == (8, 18) and short["frame_size"] == [64, 64]
    for run in (short, long):
        assert run["peak_gb"] >= run["rss_before_gb"] > 0 and run["inputs_gb"] >= 0
    assert short["peak_over_shortest"] == 0


def test_bench_against_another_checkout_reports_both_and_whether_they_agree(capsys):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    args = ["--against", str(repo), "--config", "tiny", "--steps", "1", "--repeats", "1", "--json"]
    assert bench.main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mode"] == "against" and result["same_latents"] is True  # the same tree: the same clip
    assert result["clip_s"]["this"] > 0 and result["clip_s"]["other"] > 0 and result["speedup"] > 0
