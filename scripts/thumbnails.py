"""Thumbnails for the template browser: `workflows/<name>.jpg` beside each workflow.

    python scripts/thumbnails.py [--demo-video OUT.mp4]

(and the Registry icon, docs/icon.png).

The demo workflow's thumbnail is frames of the video it really produces (pass
the mp4 that `make demo` printed). The other workflows need the official
weights, so theirs is a rendering of the graph itself: every node at its place
and size, with its title, its inputs, outputs and widget values, and the links
coloured by type.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
DEMO = "emocast_demo"
SIZE = (768, 576)
QUALITY = 88

_BACKGROUND, _NODE, _TITLE_BAR, _TEXT, _DIM = "#202020", "#353535", "#222222", "#dddddd", "#999999"
_LINK_COLOURS = {"IMAGE": "#64b5f6", "MASK": "#81c784", "AUDIO": "#ffb74d", "VAE": "#ff6e6e", "LATENT": "#ff9cf9",
                 "INT": "#aaaaaa", "FLOAT": "#aaaaaa", "STRING": "#aaaaaa", "VIDEO": "#ffd54f"}
_CUSTOM_LINK = "#b39ddb"  # the pack's own types (EMOCAST_*)


def _font(size: float) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=max(6.0, size))


def render_graph(workflow: dict, size: tuple[int, int] = SIZE) -> Image.Image:
    """The workflow's graph drawn as the editor lays it out, scaled to fit `size`."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    left = min(n["pos"][0] for n in nodes.values()) - 40
    top = min(n["pos"][1] for n in nodes.values()) - 70
    right = max(n["pos"][0] + n["size"][0] for n in nodes.values()) + 40
    bottom = max(n["pos"][1] + n["size"][1] for n in nodes.values()) + 40
    scale = min(size[0] / (right - left), size[1] / (bottom - top))
    ox = (size[0] - (right - left) * scale) / 2 - left * scale
    oy = (size[1] - (bottom - top) * scale) / 2 - top * scale
    title_h, row_h = 30 * scale, 22 * scale
    title_font, row_font = _font(21 * scale), _font(17 * scale)

    def box(node):
        x, y = node["pos"][0] * scale + ox, node["pos"][1] * scale + oy
        return x, y - title_h, x + node["size"][0] * scale, y + node["size"][1] * scale

    def slot(node, index, output):
        x0, y0, x1, _ = box(node)
        return (x1 if output else x0), y0 + title_h + row_h * (index + 0.5)

    image = Image.new("RGB", size, _BACKGROUND)
    draw = ImageDraw.Draw(image)
    for _, src, src_slot, dst, dst_slot, kind in workflow["links"]:
        if src not in nodes or dst not in nodes:
            continue
        (ax, ay), (bx, by) = slot(nodes[src], src_slot, True), slot(nodes[dst], dst_slot, False)
        colour = _LINK_COLOURS.get(kind, _CUSTOM_LINK)
        bend = max(abs(bx - ax) / 2, 20 * scale)
        t = np.linspace(0, 1, 32)[:, None]
        p0, p1, p2, p3 = map(np.array, ((ax, ay), (ax + bend, ay), (bx - bend, by), (bx, by)))
        curve = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3
        draw.line([tuple(p) for p in curve], fill=colour, width=max(1, round(3 * scale)))
    for node in nodes.values():
        x0, y0, x1, y1 = box(node)
        radius = 8 * scale
        draw.rounded_rectangle((x0, y0, x1, y1), radius, fill=node.get("bgcolor", _NODE))
        draw.rounded_rectangle((x0, y0, x1, y0 + title_h), radius, fill=node.get("color", _TITLE_BAR))
        draw.text((x0 + 10 * scale, y0 + 6 * scale), node.get("title") or node["type"], fill=_TEXT, font=title_font)
        inputs, outputs = node.get("inputs") or [], node.get("outputs") or []
        for i, item in enumerate(inputs):
            _, y = slot(node, i, False)
            draw.text((x0 + 10 * scale, y - 7 * scale), item["name"], fill=_DIM, font=row_font)
        for i, item in enumerate(outputs):
            _, y = slot(node, i, True)
            draw.text((x1 - 10 * scale, y - 7 * scale), item["name"], fill=_DIM, font=row_font, anchor="ra")
        first = max(len(inputs), len(outputs))
        for j, value in enumerate(node.get("widgets_values") or []):
            y = y0 + title_h + row_h * (first + j + 0.2)
            if y + row_h > y1:
                break
            text = str(value).replace("\n", " ")
            limit = max(4, int((x1 - x0) / (8 * scale)))
            draw.text((x0 + 10 * scale, y), text if len(text) <= limit else text[: limit - 1] + "…",
                      fill=_TEXT, font=row_font)
    return image


def video_thumbnail(frames: np.ndarray, size: tuple[int, int] = SIZE, columns: int = 4, rows: int = 3) -> Image.Image:
    """Frames [T,H,W,3] float in 0..1 spread evenly over the video, as a grid filling `size`."""
    count = columns * rows
    picks = np.linspace(0, len(frames) - 1, count + 2)[1:-1].round().astype(int)
    cell = (size[0] // columns, size[1] // rows)
    image = Image.new("RGB", size, _BACKGROUND)
    for k, index in enumerate(picks):
        frame = Image.fromarray((np.clip(frames[index], 0, 1) * 255).round().astype(np.uint8))
        side = min(cell)
        frame = frame.resize((side, side), Image.Resampling.BICUBIC)
        x = (k % columns) * cell[0] + (cell[0] - side) // 2
        y = (k // columns) * cell[1] + (cell[1] - side) // 2
        image.paste(frame, (x, y))
    return image


def icon(portrait: Image.Image, size: int = 256) -> Image.Image:
    """The Registry icon: the demo's drawn portrait over a speech waveform."""
    image = portrait.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    base = size * 0.89
    for i, x in enumerate(np.arange(size * 0.09, size * 0.91, size * 0.047)):
        half = size * (0.023 + 0.055 * abs(np.sin(i * 0.9)) * (0.5 + 0.5 * np.sin(i * 0.37)))
        draw.rounded_rectangle((x - size * 0.012, base - half, x + size * 0.012, base + half), size * 0.012,
                               fill=_LINK_COLOURS["AUDIO"])
    return image


def save(image: Image.Image, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, "JPEG", quality=QUALITY, optimize=True)
    tmp.replace(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-video", type=Path, help=f"the mp4 {DEMO}.json produced (e.g. by `make demo`)")
    args = parser.parse_args(argv)
    for path in sorted(WORKFLOWS.glob("*.json")):
        if path.stem == DEMO:
            if args.demo_video is None:
                print(f"{path.stem}: kept (pass --demo-video to remake it)")
                continue
            sys.path.insert(0, str(REPO))
            from emocast_core.video import read_mp4
            image = video_thumbnail(read_mp4(args.demo_video).frames)
        else:
            image = render_graph(json.loads(path.read_text()))
        save(image, path.with_suffix(".jpg"))
        print(f"{path.stem}: {path.with_suffix('.jpg').relative_to(REPO)}")
    icon(Image.open(WORKFLOWS / "input" / "emocast_demo_portrait.png")).save(REPO / "docs" / "icon.png", optimize=True)
    print("icon: docs/icon.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
