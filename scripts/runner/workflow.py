"""UI ("save") workflow -> API ("prompt") graph, driven by a live /object_info.

The pack ships UI-format workflows (what users load in the editor); the server
executes API graphs.  This follows what the 0.3.75 frontend (1.32.9) does when
it queues a graph:

* widget values are positional: walk the node's widget inputs (INT, FLOAT,
  STRING, BOOLEAN, COMBO, except `forceInput`) in `input_order`, required then
  optional.  An INT with `control_after_generate` (or, when the flag is absent,
  one named `seed`/`noise_seed`) is followed by one extra value ("randomize",
  "fixed", ...); a COMBO with `control_after_generate` by two (mode and filter).
  Upload buttons and preview widgets sit after the real widgets and are ignored.
  A control word left behind by an older schema (an INT that has since lost
  its control) is skipped when the next widget could not hold it.
  Values missing at the end take the input's default.
* links: `[id, from_node, from_slot, to_node, to_slot, type]` (v0.4) or dicts
  with origin_id/target_id (v1).  A linked input overrides the widget value.
* virtual nodes never reach the server: Note/MarkdownNote are dropped, Reroute
  is followed to its source, a PrimitiveNode's value is copied into the inputs
  it feeds.
* mode 2 (muted) nodes are dropped and links from them removed; mode 4
  (bypassed) nodes are dropped and each link from them is re-routed to the
  bypassed node's input of the same type (the frontend's rule).
* subgraphs are not supported: they raise WorkflowError (unpack them first).

This is our own implementation.  We looked at `comfy-test`'s converter (PyPI),
but it brings ~70 MB of unrelated dependencies (uv, tree-sitter, py7zr, ...)
and drops any widget value spelled like a seed control ("fixed", ...) wherever
it appears, which would silently corrupt a Combo with such an option.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL_WORDS = {"fixed", "increment", "decrement", "randomize", "increment-wrap"}
# Editor-only node types that the frontend never sends to the server.
DROPPED_TYPES = {"Note", "MarkdownNote"}
REROUTE_TYPES = {"Reroute"}
PRIMITIVE_TYPES = {"PrimitiveNode"}
VIRTUAL_TYPES = DROPPED_TYPES | REROUTE_TYPES | PRIMITIVE_TYPES
MODE_MUTED = 2
MODE_BYPASSED = 4


class WorkflowError(ValueError):
    """The workflow cannot be converted; the message says which node and why."""


def load_workflow(path: str | Path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise WorkflowError(f"{path} is not valid JSON: {e}") from e


def is_api_format(obj: Any) -> bool:
    """True for an API graph `{"<id>": {"class_type": ..., "inputs": ...}}`."""
    return (isinstance(obj, dict) and "nodes" not in obj
            and all(isinstance(v, dict) and "class_type" in v for v in obj.values()))


def widget_layout(node_info: dict) -> list[tuple[str, int]]:
    """[(input name, number of widgets_values it occupies)] in widget order."""
    inputs = node_info.get("input", {})
    order = node_info.get("input_order") or {sec: list(inputs.get(sec, {})) for sec in ("required", "optional")}
    layout = []
    for sec in ("required", "optional"):
        for name in order.get(sec, []):
            spec = inputs.get(sec, {}).get(name)
            if not spec:
                continue
            kind = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            is_combo = isinstance(kind, list) or kind == "COMBO"
            if not (is_combo or kind in WIDGET_TYPES) or opts.get("forceInput"):
                continue
            width = 1
            if kind == "INT" and opts.get("control_after_generate", name in ("seed", "noise_seed")):
                width += 1
            elif is_combo and opts.get("control_after_generate"):
                width += 2
            layout.append((name, width))
    return layout


def widget_default(node_info: dict, name: str) -> Any:
    for sec in ("required", "optional"):
        spec = node_info.get("input", {}).get(sec, {}).get(name)
        if spec:
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if "default" in opts:
                return opts["default"]
            options = spec[0] if isinstance(spec[0], list) else opts.get("options")
            if options:
                return options[0]
            return None
    return None


def _is_optional_without_default(node_info: dict, name: str) -> bool:
    spec = node_info.get("input", {}).get("optional", {}).get(name)
    return bool(spec) and widget_default(node_info, name) is None


def _types_compatible(a: Any, b: Any) -> bool:
    """LiteGraph.isValidConnection: equal, a wildcard, or overlapping 'A,B' lists."""
    a = "" if a in (None, "*", 0) else str(a).lower()
    b = "" if b in (None, "*", 0) else str(b).lower()
    if not a or not b or a == b:
        return True
    if "," not in a and "," not in b:
        return False
    return bool(set(a.split(",")) & set(b.split(",")))


def _parse_links(workflow: dict) -> dict[int, tuple[int, int, Any]]:
    """link id -> (origin node id, origin slot, type)."""
    links = {}
    for link in workflow.get("links") or []:
        if isinstance(link, dict):
            links[link["id"]] = (link["origin_id"], link["origin_slot"], link.get("type"))
        elif isinstance(link, (list, tuple)) and len(link) >= 5:
            links[link[0]] = (link[1], link[2], link[5] if len(link) > 5 else None)
    return links


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a UI workflow to the API graph `POST /prompt` executes.

    Raises WorkflowError for node types the server does not know (listing
    them: usually a pack that failed to import) and for subgraphs.
    """
    if is_api_format(workflow):
        return copy.deepcopy(workflow)
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        raise WorkflowError("not a ComfyUI workflow: expected a UI json with a 'nodes' list or an API graph")

    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = _parse_links(workflow)
    subgraph_ids = {sg.get("id") for sg in (workflow.get("definitions") or {}).get("subgraphs", [])}

    def active(node):
        return node.get("mode", 0) not in (MODE_MUTED, MODE_BYPASSED)

    subgraphs_used = [n["id"] for n in nodes.values() if n.get("type") in subgraph_ids and active(n)]
    if subgraphs_used:
        raise WorkflowError(f"nodes {subgraphs_used} are subgraphs, which this converter does not "
                            "support; unpack them in the editor (right click > Unpack Subgraph)")
    unknown = sorted({n.get("type") for n in nodes.values()
                      if active(n) and n.get("type") not in object_info and n.get("type") not in VIRTUAL_TYPES})
    if unknown:
        raise WorkflowError(f"node types unknown to this ComfyUI server: {unknown} "
                            "(is the pack that provides them installed and did it import?)")

    def resolve(origin_id, slot, link_type, seen=frozenset()):
        """What an input linked to (origin_id, slot) receives: ("link", ref), ("value", v) or None."""
        if origin_id in seen:
            raise WorkflowError(f"link cycle through node {origin_id}")
        seen = seen | {origin_id}
        node = nodes.get(origin_id)
        if node is None:
            return None
        kind = node.get("type")
        mode = node.get("mode", 0)
        if mode == MODE_MUTED or kind in DROPPED_TYPES:
            return None
        if kind in PRIMITIVE_TYPES:
            values = node.get("widgets_values") or [None]
            return ("value", values[0])
        if kind in REROUTE_TYPES or mode == MODE_BYPASSED:
            index = 0 if kind in REROUTE_TYPES else _bypass_input_index(node, slot, link_type)
            inputs = node.get("inputs") or []
            if index is None or index >= len(inputs) or inputs[index].get("link") is None:
                return None
            upstream = links.get(inputs[index]["link"])
            if upstream is None:
                return None
            return resolve(upstream[0], upstream[1], link_type, seen)
        return ("link", [str(origin_id), slot])

    api: dict[str, dict] = {}
    for node in sorted(nodes.values(), key=lambda n: n.get("order", 0)):
        kind = node.get("type")
        if not active(node) or kind in VIRTUAL_TYPES:
            continue
        info = object_info[kind]
        inputs: dict[str, Any] = {}

        values = node.get("widgets_values")
        if isinstance(values, dict):  # some packs serialise widgets by name
            inputs.update({k: v for k, v in values.items() if k in _all_input_names(info)})
        else:
            values = values or []
            layout = widget_layout(info)
            pos = 0
            for i, (name, width) in enumerate(layout):
                value = values[pos] if pos < len(values) else None
                inputs[name] = widget_default(info, name) if value is None else value
                pos += 1
                if width > 1 or _stale_control_value(info, layout, i, values, pos):
                    pos += width - 1 if width > 1 else 1

        for slot in node.get("inputs") or []:
            link_id = slot.get("link")
            name = (slot.get("widget") or {}).get("name") or slot.get("name")
            if link_id is None or link_id not in links:
                continue
            origin_id, origin_slot, link_type = links[link_id]
            got = resolve(origin_id, origin_slot, link_type or slot.get("type"))
            if got is not None:
                inputs[name] = got[1]

        for name in [k for k, v in inputs.items() if v is None and _is_optional_without_default(info, k)]:
            del inputs[name]
        title = node.get("title") or info.get("display_name") or kind
        api[str(node["id"])] = {"inputs": _ordered(inputs, info), "class_type": kind, "_meta": {"title": title}}
    return api


def _input_spec(info: dict, name: str) -> list:
    for sec in ("required", "optional"):
        spec = info.get("input", {}).get(sec, {}).get(name)
        if spec:
            return spec
    return []


def _stale_control_value(info: dict, layout: list, i: int, values: list, pos: int) -> bool:
    """An INT saved by an older schema that had a seed control still carries it.

    True when the value after this INT is a control word and the next widget
    could not take that word (not a STRING, not a combo offering it).
    """
    spec = _input_spec(info, layout[i][0])
    if not spec or spec[0] != "INT" or pos >= len(values) or values[pos] not in CONTROL_WORDS:
        return False
    if i + 1 >= len(layout):
        return True
    nxt = _input_spec(info, layout[i + 1][0])
    kind = nxt[0] if nxt else None
    opts = nxt[1] if len(nxt) > 1 and isinstance(nxt[1], dict) else {}
    options = kind if isinstance(kind, list) else opts.get("options") or []
    return kind != "STRING" and values[pos] not in options


def _all_input_names(info: dict) -> set[str]:
    return {name for sec in ("required", "optional") for name in info.get("input", {}).get(sec, {})}


def _ordered(inputs: dict, info: dict) -> dict:
    order = info.get("input_order") or {}
    names = [n for sec in ("required", "optional") for n in order.get(sec, [])]
    out = {n: inputs[n] for n in names if n in inputs}
    out.update({k: v for k, v in inputs.items() if k not in out})
    return out


def _bypass_input_index(node: dict, slot: int, link_type: Any) -> int | None:
    """Which input a bypassed node passes to output `slot` (frontend rule)."""
    inputs = node.get("inputs") or []
    outputs = node.get("outputs") or []
    if not inputs:
        return None
    out_type = outputs[slot].get("type") if slot < len(outputs) else link_type
    if link_type in (None, "", "*"):
        return slot if len(inputs) > slot else 0
    same = inputs[slot] if slot < len(inputs) else None
    if same and _types_compatible(same.get("type"), out_type) and _types_compatible(same.get("type"), link_type):
        return slot
    for i, inp in enumerate(inputs):
        if inp.get("type") == link_type:
            return i
    for i, inp in enumerate(inputs):
        if _types_compatible(inp.get("type"), out_type) and _types_compatible(inp.get("type"), link_type):
            return i
    return None


__all__ = ["WorkflowError", "load_workflow", "is_api_format", "ui_to_api", "widget_layout"]
