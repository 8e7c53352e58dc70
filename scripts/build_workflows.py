"""Regenerate the UI-format example workflows in workflows/ from compact specs.

    set -a && eval "$(bash scripts/provision.sh)" && set +a && $EMOCAST_VENV/bin/python scripts/build_workflows.py

Widget order and defaults come from a live server's /object_info, so the
files always match the nodes' current schemas.  Edit the specs below, not
the JSON.  Each spec: node key -> (type, widget values by input name, links
{input name: (source key, output slot)}, column, note).
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emocast_core.face import MASKS_ONLY_CHOICE as MASKS_ONLY  # noqa: E402
from scripts.runner.comfy_env import find_env  # noqa: E402
from scripts.runner.comfy_server import ComfyServer  # noqa: E402
from scripts.runner.workflow import widget_default, widget_layout  # noqa: E402
from training import demo as demo_layout  # noqa: E402
from training.demo import assets as demo_assets  # noqa: E402
from training.demo.generate import DEMO_GUIDANCE  # noqa: E402

PORTRAIT = "emocast_portrait.png"
SPEECH = "emocast_speech.wav"
MODELS = dict(checkpoint="net.pth", vae_name="sd-vae-ft-mse.safetensors", wav2vec_model="wav2vec2-base-960h",
              text_encoder="clip-vit-large-patch14", insightface_dir="antelopev2")


# The demo folder's layout and the demo inputs, as training/demo names them (what the loaders list: base names).
DEMO_MODELS = dict(checkpoint=Path(demo_layout.MODEL_FILE).name,
                   wav2vec_model=Path(demo_layout.AUDIO_DIR).name, text_encoder=Path(demo_layout.TEXT_DIR).name)
DEMO_INPUTS = dict(portrait=demo_assets.PORTRAIT, face_mask=demo_assets.FACE_MASK, lip_mask=demo_assets.LIP_MASK,
                   speech=demo_assets.SPEECH)


def conditioning(emotion: dict, audio_file=SPEECH, sampler: dict | None = None, paste_back=False,
                 stream=False) -> dict:
    """The shared graph: portrait, speech and emotion into the sampler, then the video (`stream`: the
    sampler writes the mp4 itself, clip by clip)."""
    wires = {"model": ("load", 0), "vae": ("vae", 0), "portrait": ("prep", 0), "audio_features": ("speech", 0),
             "emotion": ("emotion", 0)}
    if stream:
        video = {"sampler": ("EmoCASTSamplerToVideo", {"paste_back": paste_back, "filename_prefix": "EmoCAST/talking",
                                                       **(sampler or {})}, wires, 2)}
    else:
        video = {
            "sampler": ("EmoCASTSampler", {"paste_back": paste_back, **(sampler or {})}, wires, 2),
            "video": ("EmoCASTVideoCombine", {"filename_prefix": "EmoCAST/talking"},
                      {"images": ("sampler", 0), "fps": ("sampler", 2), "audio": ("sampler", 1)}, 3),
        }
    return {
        "load": ("LoadEmoCAST", {"checkpoint": MODELS["checkpoint"]}, {}, 0),
        "vae": ("VAELoader", {"vae_name": MODELS["vae_name"]}, {}, 0),
        "image": ("LoadImage", {"image": PORTRAIT}, {}, 0),
        "audio": ("LoadAudio", {"audio": audio_file}, {}, 0),
        "prep": ("EmoCASTPortraitPrep", {"insightface_dir": MODELS["insightface_dir"]}, {"image": ("image", 0)}, 1),
        "speech": ("AudioEmotiveEncode", {"wav2vec_model": MODELS["wav2vec_model"]}, {"audio": ("audio", 0)}, 1),
        "emotion": ("EmotionPromptEncode", {"text_encoder": MODELS["text_encoder"], **emotion}, {}, 1),
        **video,
    }


def note(text: str, column: int = 0) -> tuple:
    return ("Note", {"text": text}, {}, column)


MODEL_NOTE = (
    "EmoCAST talking portrait. Models (see the pack README, 'Model files'): models/emocast/net.pth, "
    "models/vae/sd-vae-ft-mse.safetensors, models/wav2vec2/wav2vec2-base-960h/, "
    "models/text_encoders/clip-vit-large-patch14/, models/insightface/models/antelopev2/. "
    "Put a square-ish, frontal portrait and a speech recording in ComfyUI/input/."
)

WORKFLOWS = {
    "emocast_basic": {
        **conditioning({"preset": "happy"}),
        "note": note(MODEL_NOTE),
    },
    "emocast_long_audio": {
        **conditioning({"preset": "neutral"}, paste_back=True, stream=True),
        "note": note(
            "Long audio: any length works. Sampler to Video generates 16-frame clips one after another, each "
            "continuing from the last two frames, and writes each clip into the mp4 as soon as it is made, so "
            "memory stays that of one clip; the progress bar counts clips x steps. paste_back composites the "
            "face crop into the original picture. " + MODEL_NOTE),
    },
    "emocast_emotion_keyframes": {
        **conditioning({"preset": "custom", "transition_seconds": 0.8,
                        "prompt": "0s: A person is talking calmly and gently. | "
                                  "2s: A person is talking furiously, shouting with anger."}),
        "note": note(
            "Emotion keyframes: 'TIME: text | TIME: text'. Each emotion holds until the next keyframe and "
            "blends into it over transition_seconds (a preset name such as 'happy' works as text). "
            + MODEL_NOTE),
    },
}


def eight_emotions() -> dict:
    spec = conditioning({"preset": "neutral"})
    del spec["emotion"], spec["sampler"], spec["video"]
    presets = ["neutral", "happy", "sad", "surprised", "fearful", "disgusted", "angry", "contemptuous"]
    for preset in presets:
        spec[f"emotion_{preset}"] = ("EmotionPromptEncode", {"text_encoder": MODELS["text_encoder"], "preset": preset}, {}, 1)
        spec[f"sampler_{preset}"] = ("EmoCASTSampler", {}, {
            "model": ("load", 0), "vae": ("vae", 0), "portrait": ("prep", 0), "audio_features": ("speech", 0),
            "emotion": (f"emotion_{preset}", 0)}, 2)
    # A 4 x 2 grid: two rows of four stitched left to right, then the rows top to bottom.
    rows = []
    for r, row in enumerate((presets[:4], presets[4:])):
        previous = (f"sampler_{row[0]}", 0)
        for preset in row[1:]:
            key = f"stitch_{preset}"
            spec[key] = ("ImageStitch", {"direction": "right", "match_image_size": True, "spacing_width": 0},
                         {"image1": previous, "image2": (f"sampler_{preset}", 0)}, 3)
            previous = (key, 0)
        rows.append(previous)
    spec["grid"] = ("ImageStitch", {"direction": "down", "match_image_size": True, "spacing_width": 0},
                    {"image1": rows[0], "image2": rows[1]}, 4)
    previous = ("grid", 0)
    spec["video"] = ("EmoCASTVideoCombine", {"filename_prefix": "EmoCAST/eight_emotions"},
                     {"images": previous, "fps": ("sampler_neutral", 2), "audio": ("sampler_neutral", 1)}, 5)
    spec["note"] = note("The eight MEAD emotions from one portrait and one recording, side by side "
                        "(same seed for all). " + MODEL_NOTE)
    return spec


def demo() -> dict:
    """The embedded demo model (demo_model/, a models/ layout) on a drawn face it never saw."""
    return {
        "load": ("LoadEmoCAST", {"checkpoint": DEMO_MODELS["checkpoint"]}, {}, 0),
        "image": ("LoadImage", {"image": DEMO_INPUTS["portrait"]}, {}, 0),
        "face_mask": ("LoadImageMask", {"image": DEMO_INPUTS["face_mask"], "channel": "red"}, {}, 0),
        "lip_mask": ("LoadImageMask", {"image": DEMO_INPUTS["lip_mask"], "channel": "red"}, {}, 0),
        "audio": ("LoadAudio", {"audio": DEMO_INPUTS["speech"]}, {}, 0),
        "prep": ("EmoCASTPortraitPrep", {"insightface_dir": MASKS_ONLY, "crop_scale": 0.0, "allow_no_face": True,
                                         "resolution": 64},
                 {"image": ("image", 0), "face_mask": ("face_mask", 0), "lip_mask": ("lip_mask", 0)}, 1),
        "speech": ("AudioEmotiveEncode", {"wav2vec_model": DEMO_MODELS["wav2vec_model"]}, {"audio": ("audio", 0)}, 1),
        "emotion": ("EmotionPromptEncode", {"text_encoder": DEMO_MODELS["text_encoder"], "preset": "happy"}, {}, 1),
        "sampler": ("EmoCASTSamplerToVideo", {"steps": 20, "cfg": DEMO_GUIDANCE, "filename_prefix": "EmoCAST/demo"},
                    {"model": ("load", 0), "portrait": ("prep", 0), "audio_features": ("speech", 0),
                     "emotion": ("emotion", 0)}, 2),
        "note": note(
            "DEMO MODEL, not EmoCAST's weights: a 5 M-parameter EmoCAST the pack trained itself on drawn "
            "64x64 faces (demo_model/README.md). It animates drawn faces like the bundled one, not photos. "
            "Models: point extra_model_paths.yaml at the pack's demo_model/ folder, or copy its emocast/, "
            "wav2vec2/ and text_encoders/ folders into ComfyUI/models/. Inputs from the pack's workflows/input/. "
            "The VAE is bundled in the checkpoint; Portrait Prep detects nothing ('none') and takes the two "
            "masks as face and lip regions. CFG 2: this small model follows the prompt better there than at "
            "the official 3.5. Try another preset or your own prompt."),
    }


def lora_training() -> dict:
    stages = {}
    previous = None
    for column, stage in enumerate(("appearance", "lipsync", "emotion"), start=2):
        wires = {"model": ("load", 0), "dataset": ("data", 0)}
        if previous:
            wires["previous"] = (previous, 0)
        stages[stage] = ("EmoCASTTrainLoRA", {"stage": stage, "steps": 300, "run_name": "emocast_lora/my_speaker"},
                         wires, column)
        previous = stage
    return {
        "load": ("LoadEmoCAST", {"checkpoint": MODELS["checkpoint"]}, {}, 0),
        "vae": ("VAELoader", {"vae_name": MODELS["vae_name"]}, {}, 0),
        "data": ("EmoCASTPrepareDataset", {"videos_dir": "emocast_training_videos", "cache_name": "my_speaker",
                                           "wav2vec_model": MODELS["wav2vec_model"],
                                           "text_encoder": MODELS["text_encoder"],
                                           "insightface_dir": MODELS["insightface_dir"]}, {"vae": ("vae", 0)}, 1),
        **stages,
        "save": ("EmoCASTSaveLoRA", {"filename_prefix": "emocast/my_speaker"}, {"trainer": ("emotion", 0)}, 5),
        "loss_plot": ("LossGraphNode", {"filename_prefix": "emocast_lora_loss"}, {"loss": ("emotion", 2)}, 5),
        "note": note(
            "LoRA fine-tuning on your own speaker: put talking videos (mp4/mov/mkv/webm with sound) in "
            "ComfyUI/input/emocast_training_videos/, each with a caption file of the same name (.txt; optional "
            "first line 'emotion: happy'). The three stages train one after the other; each keeps resumable "
            "checkpoints in output/emocast_lora/my_speaker/. Queue again after an interrupt to continue. Use the "
            "saved LoRA with Apply EmoCAST LoRA. A GPU is needed for real training. " + MODEL_NOTE),
    }


def build(spec: dict, info: dict) -> dict:
    keys = list(spec)
    ids = {key: i + 1 for i, key in enumerate(keys)}
    rows: dict[int, int] = {}
    nodes, links = [], []
    outgoing: dict[tuple[int, int], list[int]] = {}
    for key in keys:
        node_type, values, wires, column = spec[key]
        for name, (src, slot) in wires.items():
            link_id = len(links) + 1
            src_type = info[spec[src][0]]["output"][slot]
            links.append([link_id, ids[src], slot, ids[key], name, src_type])
            outgoing.setdefault((ids[src], slot), []).append(link_id)
    for order, key in enumerate(keys):
        node_type, values, wires, column = spec[key]
        row = rows.get(column, 0)
        rows[column] = row + 1
        node = {"id": ids[key], "type": node_type, "pos": [40 + 380 * column, 40 + 300 * row],
                "size": [340, 260], "flags": {}, "order": order, "mode": 0, "properties": {}}
        if node_type == "Note":
            node.update(inputs=[], outputs=[], widgets_values=[values["text"]], size=[420, 220])
            nodes.append(node)
            continue
        node_info = info[node_type]
        node["properties"]["Node name for S&R"] = node_type
        socket_inputs = []
        widget_names = {name for name, _ in widget_layout(node_info)}
        for link in links:
            if link[3] == ids[key]:
                entry = {"name": link[4], "type": link[5], "link": link[0]}
                if link[4] in widget_names:  # a widget fed by a link (e.g. fps)
                    entry["widget"] = {"name": link[4]}
                socket_inputs.append(entry)
                link[4] = len(socket_inputs) - 1  # the slot index among the node's inputs
        node["inputs"] = socket_inputs
        node["outputs"] = [
            {"name": name, "type": kind, "links": outgoing.get((ids[key], slot), []), "slot_index": slot}
            for slot, (name, kind) in enumerate(zip(node_info["output_name"], node_info["output"]))
        ]
        widgets = []
        for name, width in widget_layout(node_info):
            value = values.get(name, widget_default(node_info, name))
            widgets.append(value)
            if width == 2:
                widgets.append("fixed")
            elif width == 3:
                widgets.extend(["fixed", ""])
        node["widgets_values"] = widgets
        unknown = set(values) - {name for name, _ in widget_layout(node_info)}
        if unknown:
            raise ValueError(f"{key}: {node_type} has no widget {sorted(unknown)}")
        nodes.append(node)
    return {"last_node_id": len(nodes), "last_link_id": len(links), "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


def main() -> int:
    env, reason = find_env()
    if env is None:
        print(reason, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as base, ComfyServer(env, Path(base)) as server:
        info = server.object_info()
    out = REPO / "workflows"
    specs = {**WORKFLOWS, "emocast_eight_emotions": eight_emotions(), "emocast_lora_training": lora_training(),
             "emocast_demo": demo()}
    for name, spec in specs.items():
        (out / f"{name}.json").write_text(json.dumps(build(spec, info), indent=1) + "\n")
        print(f"wrote workflows/{name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
