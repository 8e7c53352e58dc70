"""UI -> API workflow conversion, checked against the live server's /object_info and by running the result."""
import io

import numpy as np
import pytest
from PIL import Image

from scripts.runner.workflow import WorkflowError, is_api_format, ui_to_api, widget_layout

pytestmark = pytest.mark.comfyui


class UI:
    """Builds a v0.4 UI workflow the way the editor saves it."""

    def __init__(self):
        self.nodes, self.links = [], []

    def node(self, id, type, widgets=None, inputs=(), outputs=(), mode=0, title=None):
        node = {"id": id, "type": type, "pos": [0, 0], "size": [200, 100], "flags": {}, "order": len(self.nodes),
                "mode": mode, "inputs": [dict(i) for i in inputs],
                "outputs": [{"name": t, "type": t, "links": []} for t in outputs],
                "properties": {"Node name for S&R": type}, "widgets_values": widgets}
        if title:
            node["title"] = title
        self.nodes.append(node)
        return node

    def link(self, src, src_slot, dst, input_name):
        link_id = len(self.links) + 1
        source = next(n for n in self.nodes if n["id"] == src)
        target = next(n for n in self.nodes if n["id"] == dst)
        slot = next(i for i, inp in enumerate(target["inputs"]) if inp["name"] == input_name)
        kind = source["outputs"][src_slot]["type"]
        target["inputs"][slot]["link"] = link_id
        source["outputs"][src_slot]["links"].append(link_id)
        self.links.append([link_id, src, src_slot, dst, slot, kind])

    def json(self):
        return {"last_node_id": max(n["id"] for n in self.nodes), "last_link_id": len(self.links),
                "nodes": self.nodes, "links": self.links, "groups": [], "config": {}, "extra": {},
                "version": 0.4}


def inp(name, type, widget=False):
    slot = {"name": name, "type": type, "link": None}
    if widget:
        slot["widget"] = {"name": name}
    return slot


def core_workflow():
    """EmptyImage -> Reroute -> ImageInvert(bypassed) -> ImageInvert -> SaveImage, with
    a PrimitiveInt feeding `color`, an editor PrimitiveNode feeding `height`, a Note and
    a muted PreviewImage.  Net effect: one inversion of colour 0x123456 at 32x24."""
    ui = UI()
    ui.node(1, "PrimitiveInt", [0x123456, "fixed"], outputs=["INT"])
    ui.node(9, "PrimitiveNode", [24, "fixed"], outputs=["INT"])
    ui.node(2, "EmptyImage", [32, 512, 1, 0, ],
            inputs=[inp("width", "INT", True), inp("height", "INT", True),
                    inp("batch_size", "INT", True), inp("color", "INT", True)], outputs=["IMAGE"])
    ui.node(3, "Reroute", None, inputs=[inp("", "*")], outputs=["IMAGE"])
    ui.node(4, "ImageInvert", None, inputs=[inp("image", "IMAGE")], outputs=["IMAGE"], mode=4)
    ui.node(5, "ImageInvert", None, inputs=[inp("image", "IMAGE")], outputs=["IMAGE"], title="Invert once")
    ui.node(6, "SaveImage", ["harness/ui"], inputs=[inp("images", "IMAGE"), inp("filename_prefix", "STRING", True)])
    ui.node(7, "Note", ["the converter drops me"])
    ui.node(8, "PreviewImage", None, inputs=[inp("images", "IMAGE")], mode=2)
    ui.link(1, 0, 2, "color")
    ui.link(9, 0, 2, "height")
    ui.link(2, 0, 3, "")
    ui.link(3, 0, 4, "image")
    ui.link(4, 0, 5, "image")
    ui.link(5, 0, 6, "images")
    ui.link(2, 0, 8, "images")
    return ui.json()


@pytest.fixture(scope="module")
def object_info(comfy_server):
    return comfy_server.object_info()


def test_widget_layout_counts_control_values(object_info):
    assert widget_layout(object_info["KSampler"]) == [
        ("seed", 2), ("steps", 1), ("cfg", 1), ("sampler_name", 1), ("scheduler", 1), ("denoise", 1)]
    assert widget_layout(object_info["PrimitiveInt"]) == [("value", 2)]
    assert widget_layout(object_info["EmptyImage"]) == [("width", 1), ("height", 1), ("batch_size", 1), ("color", 1)]
    assert widget_layout(object_info["ImageInvert"]) == []


def test_ksampler_widgets_map_past_the_seed_control(object_info):
    ui = UI()
    ui.node(1, "KSampler", [42, "randomize", 7, 3.5, "euler", "karras", 0.75],
            inputs=[inp("model", "MODEL"), inp("positive", "CONDITIONING"),
                    inp("negative", "CONDITIONING"), inp("latent_image", "LATENT")], outputs=["LATENT"])
    api = ui_to_api(ui.json(), object_info)
    assert api["1"]["inputs"] == {"seed": 42, "steps": 7, "cfg": 3.5, "sampler_name": "euler",
                                  "scheduler": "karras", "denoise": 0.75}


def test_core_workflow_converts_like_the_frontend(object_info):
    api = ui_to_api(core_workflow(), object_info)
    assert is_api_format(api)
    assert sorted(api) == ["1", "2", "5", "6"]  # no Reroute, bypassed, Note, muted or editor primitive
    assert api["1"]["inputs"] == {"value": 0x123456}
    assert api["2"]["inputs"] == {"width": 32, "height": 24, "batch_size": 1, "color": ["1", 0]}
    assert api["5"] == {"inputs": {"image": ["2", 0]}, "class_type": "ImageInvert", "_meta": {"title": "Invert once"}}
    assert api["6"]["inputs"] == {"images": ["5", 0], "filename_prefix": "harness/ui"}


def test_converted_workflow_runs_on_the_server(comfy_server):
    entry = comfy_server.run_workflow(core_workflow(), timeout=60)
    items = comfy_server.output_items(entry)
    assert [(i["node"], i["subfolder"]) for i in items] == [("6", "harness")]
    png = comfy_server.output_path(items[0]).read_bytes()
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert pixels.shape == (24, 32, 3)
    assert (pixels == np.array([0xED, 0xCB, 0xA9], dtype=np.uint8)).all()


def test_v1_link_objects_are_understood(object_info):
    wf = core_workflow()
    wf["links"] = [{"id": l[0], "origin_id": l[1], "origin_slot": l[2], "target_id": l[3],
                    "target_slot": l[4], "type": l[5]} for l in wf["links"]]
    wf["version"] = 1
    assert ui_to_api(wf, object_info) == ui_to_api(core_workflow(), object_info)


def test_unknown_node_types_are_named(object_info):
    wf = core_workflow()
    wf["nodes"].append({"id": 50, "type": "EmoCAST_DoesNotExist", "mode": 0, "inputs": [], "outputs": [],
                        "widgets_values": []})
    with pytest.raises(WorkflowError, match="EmoCAST_DoesNotExist"):
        ui_to_api(wf, object_info)
    wf["nodes"][-1]["mode"] = 4  # a bypassed unknown node is harmless
    assert "50" not in ui_to_api(wf, object_info)


def test_subgraphs_are_refused_clearly(object_info):
    wf = core_workflow()
    sub_id = "0b9c8e31-3a4f-4c59-9a2e-3b8c0b7d1e11"
    wf["definitions"] = {"subgraphs": [{"id": sub_id, "nodes": [], "links": []}]}
    wf["nodes"].append({"id": 51, "type": sub_id, "mode": 0, "inputs": [], "outputs": [], "widgets_values": []})
    with pytest.raises(WorkflowError, match="Unpack Subgraph"):
        ui_to_api(wf, object_info)


def test_api_graphs_pass_through(object_info):
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}}
    assert ui_to_api(graph, object_info) == graph
