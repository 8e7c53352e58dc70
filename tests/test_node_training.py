"""The LoRA training nodes in the real ComfyUI (in-process, under inference mode like the executor).

A synthetic training cache at the tiny config stands in for a prepared dataset.
"""
import pytest
import torch

from emocast_core.config import EmoCASTConfig
from emocast_core.deterministic_weights import fill_deterministic
from emocast_core.models import EmoCASTNet
from training.lora import load_lora
from training.demo.synthetic import make_synthetic_cache

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

CFG = EmoCASTConfig.tiny()
CHECKPOINT = "tiny_train_net.pth"


@pytest.fixture(scope="module")
def comfy(comfy_inprocess):
    folder = comfy_inprocess.models_dir / "emocast"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(fill_deterministic(EmoCASTNet(CFG)).state_dict(), folder / CHECKPOINT)
    return comfy_inprocess


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return {"path": str(make_synthetic_cache(tmp_path_factory.mktemp("cache"), CFG, clips=4, frames=12))}


def train(comfy, dataset, run_name, stage="appearance", steps=3, previous=None, **overrides):
    model = comfy.run_node("LoadEmoCAST", checkpoint=CHECKPOINT, dtype="fp32").result[0]
    inputs = dict(model=model, dataset=dataset, stage=stage, steps=steps, learning_rate=1e-3, rank=4, alpha=4.0,
                  batch_size=1, grad_accumulation=1, frames=0 if stage == "appearance" else 4, seed=1,
                  mixed_precision="no", gradient_checkpointing=False, save_every=1, run_name=run_name, resume=True)
    inputs.update(overrides)
    if previous is not None:
        inputs["previous"] = previous
    return comfy.run_node("EmoCASTTrainLoRA", **inputs).result


def test_two_stages_chain_and_save(comfy, dataset):
    run, lora, loss, steps = train(comfy, dataset, "t_chain/run")
    assert steps == 3 and len(loss["loss"]) == 3 and all(torch.isfinite(torch.tensor(loss["loss"])))
    assert lora and all(k.startswith(("reference_unet.", "denoising_unet.")) for k in lora)
    run2, lora2, loss2, steps2 = train(comfy, dataset, "t_chain/run", stage="lipsync", steps=2, previous=run)
    assert steps2 == 5  # earlier stages' steps count, like core's trainer
    assert set(lora) < set(lora2)  # the appearance LoRA rides along, the audio modules' is added
    assert any(".audio_modules." in k for k in set(lora2) - set(lora))
    assert [s["stage"] for s in run2.stages] == ["appearance", "lipsync"]

    name = comfy.run_node("EmoCASTSaveLoRA", trainer=run2, filename_prefix="emocast/test_chain").result[0]
    assert name.startswith("emocast/test_chain_5_steps_") and name.endswith("_.safetensors")
    state, meta = load_lora(comfy.models_dir / "loras" / name)
    assert set(state) == set(lora2) and '"lipsync"' in meta["emocast.stages"]
    # The saved file applies to the model it was trained on.
    base = comfy.run_node("LoadEmoCAST", checkpoint=CHECKPOINT, dtype="fp32").result[0]
    assert comfy.run_node("ApplyEmoCASTLoRA", model=base, lora_name=name, strength=1.0).result[0].lora


def test_interrupt_keeps_checkpoints_and_queueing_again_finishes_exactly(comfy, dataset, monkeypatch):
    import comfy.model_management as mm
    import comfy.utils as comfy_utils

    _, straight, _, _ = train(comfy, dataset, "t_resume/straight", steps=4)

    def interrupt_at_two(value, total, preview, node_id=None):
        if value == 2:
            mm.interrupt_current_processing(True)

    monkeypatch.setattr(comfy_utils, "PROGRESS_BAR_HOOK", interrupt_at_two)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            train(comfy, dataset, "t_resume/interrupted", steps=4)
    finally:
        mm.interrupt_current_processing(False)
        monkeypatch.setattr(comfy_utils, "PROGRESS_BAR_HOOK", None)
    checkpoints = sorted((comfy.base_dir / "output" / "t_resume" / "interrupted" / "appearance" / "checkpoints").glob("*.safetensors"))
    assert [p.name for p in checkpoints][-1].endswith("00000002.safetensors")
    assert not list(checkpoints[0].parent.glob(".*partial*"))

    _, resumed, loss, steps = train(comfy, dataset, "t_resume/interrupted", steps=4)
    assert steps == 4 and len(loss["loss"]) == 4
    assert set(resumed) == set(straight)
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key  # bit-exact on CPU


def test_training_errors(comfy, dataset, tmp_path):
    with pytest.raises(ValueError, match="run_name must be a relative folder name"):
        train(comfy, dataset, "../escape")
    with pytest.raises(FileNotFoundError, match="no training cache at"):
        train(comfy, {"path": str(tmp_path / "no_cache")}, "t_err/run")
