"""The pack inside a real ComfyUI 0.3.75 server: import, schemas, prompts, files, events."""
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from scripts.runner.comfy_server import ExecutionFailed, PromptRejected
from scripts.runner.comfy_env import PACK_FOLDER_NAME, REPO

pytestmark = pytest.mark.comfyui

COLOR = 0x123456  # EmptyImage colour; inverted it is (0xED, 0xCB, 0xA9)
INVERTED = (0xED, 0xCB, 0xA9)


def invert_graph(width=32, height=24, color=COLOR, prefix="harness/invert"):
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": width, "height": height, "batch_size": 1, "color": color}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def traceback_blocks(log: str) -> list[str]:
    """Each 'Traceback ...' block of the log, up to its exception line."""
    return re.findall(r"Traceback \(most recent call last\):\n(?:[ \t].*\n)*.*", log)


def test_pack_imported_without_errors(comfy_server):
    log = comfy_server.log_text()
    import_lines = [line for line in log.splitlines() if f"custom_nodes/{PACK_FOLDER_NAME}" in line
                    and "seconds" in line]
    assert import_lines, f"ComfyUI never reported importing the pack:\n{comfy_server.log_tail()}"
    assert not any("IMPORT FAILED" in line for line in import_lines), import_lines
    ours = [b for b in traceback_blocks(log) if PACK_FOLDER_NAME in b or "emocast" in b.lower()]
    assert not ours, "tracebacks from the pack in the server log:\n" + "\n".join(ours)
    assert "Unable to parse pyproject.toml" not in log  # the pack is the only custom node here
    for marker in ("Cannot import", "Error while calling comfy_entrypoint", "did not return a"):
        bad = [line for line in log.splitlines() if marker in line and PACK_FOLDER_NAME in line]
        assert not bad, bad


def test_server_and_in_process_register_the_same_pack_nodes(comfy_server, comfy_inprocess):
    served = comfy_server.pack_node_ids()
    declared = comfy_inprocess.declared_node_ids()
    assert served == comfy_inprocess.pack_node_ids() == declared, (
        f"server: {sorted(served)}\nin-process: {sorted(comfy_inprocess.pack_node_ids())}\n"
        f"nodes/__init__.py NODE_CLASSES: {sorted(declared)}")


# The two ids the project fixed that do not name EmoCAST (both specific enough not to collide).
FIXED_NODE_IDS = {"EmotionPromptEncode", "AudioEmotiveEncode"}


def test_pack_node_schemas_are_complete(comfy_server):
    """Every registered pack node: EmoCAST-prefixed id and category, typed outputs, a tooltip per input."""
    info = comfy_server.object_info()
    problems = []
    for node_id in sorted(comfy_server.pack_node_ids(info)):
        node = info[node_id]
        # Node ids are global across all packs: they name EmoCAST (EmoCASTSampler, LoadEmoCAST,
        # ApplyEmoCASTLoRA...), or are one of the ids the project fixed.
        if "EmoCAST" not in node_id and node_id not in FIXED_NODE_IDS:
            problems.append(f"{node_id}: id must name EmoCAST (e.g. EmoCAST...)")
        if not str(node.get("category", "")).startswith("EmoCAST"):
            problems.append(f"{node_id}: category {node.get('category')!r} is not under EmoCAST")
        if not node.get("display_name"):
            problems.append(f"{node_id}: no display_name")
        outputs, names = node.get("output", []), node.get("output_name", [])
        if len(outputs) != len(names):
            problems.append(f"{node_id}: {len(outputs)} outputs but {len(names)} output names")
        if not outputs and not node.get("output_node"):
            problems.append(f"{node_id}: neither outputs nor output_node")
        inputs = {**node["input"].get("required", {}), **node["input"].get("optional", {})}
        for name, spec in inputs.items():
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if not opts.get("tooltip"):
                problems.append(f"{node_id}.{name}: no tooltip")
    assert not problems, "\n".join(problems)


def test_core_graph_runs_and_output_is_served(comfy_server):
    entry = comfy_server.run(invert_graph(prefix="harness/invert"), timeout=60)
    items = comfy_server.output_items(entry, kinds=["images"])
    assert [i["node"] for i in items] == ["3"], entry["outputs"]
    item = items[0]
    assert item["type"] == "output" and item["subfolder"] == "harness"
    assert comfy_server.output_path(item).is_file()
    png = comfy_server.view(item["filename"], item["subfolder"], item["type"])
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert pixels.shape == (24, 32, 3)
    assert (pixels == np.array(INVERTED, dtype=np.uint8)).all()


def test_missing_required_input_is_rejected_with_its_name(comfy_server):
    graph = invert_graph()
    del graph["2"]["inputs"]["image"]
    with pytest.raises(PromptRejected) as err:
        comfy_server.queue(graph)
    assert err.value.status == 400
    errors = err.value.errors_for("2")
    assert [e["type"] for e in errors] == ["required_input_missing"], err.value.node_errors
    assert errors[0]["extra_info"]["input_name"] == "image"


def test_value_over_max_is_rejected_with_its_name(comfy_server):
    graph = invert_graph(width=10**6)
    with pytest.raises(PromptRejected) as err:
        comfy_server.queue(graph)
    errors = err.value.errors_for("1")
    assert [e["type"] for e in errors] == ["value_bigger_than_max"], err.value.node_errors
    assert errors[0]["extra_info"]["input_name"] == "width"


def test_websocket_reports_the_prompt_lifecycle(comfy_server):
    with comfy_server.listen() as events:
        prompt_id = comfy_server.queue(invert_graph(width=16, height=16, color=0x00FF00, prefix="harness/ws"))
        entry = comfy_server.wait(prompt_id, timeout=60)
        events.wait_for("execution_success", prompt_id, timeout=30)
    assert entry["status"]["status_str"] == "success"
    kinds = [e["type"] for e in events.events(prompt_id)]
    assert kinds[0] == "execution_start" and "execution_success" in kinds, kinds
    ran = [e["data"]["node"] for e in events.events(prompt_id, types=["executing"]) if e["data"]["node"]]
    assert ran == ["1", "2", "3"], ran
    last_node_event = max(i for i, e in enumerate(events.events(prompt_id)) if e["type"] == "executed")
    assert kinds.index("execution_success") > last_node_event, kinds
    executed = events.events(prompt_id, types=["executed"])
    assert [e["data"]["node"] for e in executed] == ["3"]
    assert executed[0]["data"]["output"]["images"][0]["subfolder"] == "harness"


def test_interrupt_stops_a_running_prompt(comfy_server):
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 512, "height": 512, "batch_size": 2, "color": 7}},
        "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 31, "sigma": 10.0}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    with comfy_server.listen() as events:
        prompt_id = comfy_server.queue(graph)
        events.wait_for("executing", prompt_id, timeout=30, predicate=lambda e: e["data"]["node"] == "2")
        comfy_server.interrupt()
        entry = comfy_server.wait(prompt_id, timeout=60)
        events.wait_for("execution_interrupted", prompt_id, timeout=30)
    assert entry["status"]["status_str"] == "error"
    assert "4" not in entry.get("outputs", {})
    assert "interrupted at node" in str(ExecutionFailed(prompt_id, entry, ""))


def test_model_files_added_after_start_are_listed(comfy_server):
    """ComfyUI's file-list cache follows folder mtimes: no restart needed after put_model."""
    before = comfy_server.object_info("VAELoader")["input"]["required"]["vae_name"][0]
    assert "harness_probe.safetensors" not in before
    comfy_server.put_model("vae", "harness_probe.safetensors", b"not a real model")
    after = comfy_server.object_info("VAELoader")["input"]["required"]["vae_name"][0]
    assert "harness_probe.safetensors" in after


def test_workflow_templates_list_the_shipped_workflows(comfy_server):
    shipped = sorted(p.stem for p in (REPO / "workflows").glob("*.json"))
    listed = comfy_server.workflow_templates()
    if shipped:
        assert sorted(listed.get(PACK_FOLDER_NAME, [])) == shipped, listed
    else:  # nothing shipped yet: nothing may be listed for the pack either
        assert PACK_FOLDER_NAME not in listed, listed


def test_shipped_workflows_convert_against_the_live_server(comfy_server):
    """Every workflows/*.json is a UI workflow whose node types this server knows."""
    info = comfy_server.object_info()
    from scripts.runner.workflow import is_api_format, load_workflow, ui_to_api

    for path in sorted((REPO / "workflows").glob("*.json")):
        workflow = load_workflow(path)
        assert not is_api_format(workflow), f"{path.name} must be a UI (save) workflow, not an API graph"
        graph = ui_to_api(workflow, info)
        assert graph, f"{path.name} converted to an empty graph"
        json.dumps(graph)
