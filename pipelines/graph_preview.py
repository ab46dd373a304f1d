"""The gallery's picture of a graph: boxes and curves laid out for an SVG, from a document."""

from __future__ import annotations

from nodes import registry

#: A node card's size on the designer's canvas (designer.css), in canvas units.
PREVIEW_NODE_SIZE = (220, 90)
#: Room around a Loop's children, and around the whole preview.
PREVIEW_PADDING = 40
PREVIEW_LABEL_CHARS = 22


def graph_preview(document: dict) -> dict | None:
    """What the gallery's SVG of a graph draws: a box per node where the designer puts it
    (a Loop's children are placed relative to the Loop, which grows to hold them), and a
    curve per edge. None for a graph without nodes."""
    nodes = document.get("nodes") or []
    if not nodes:
        return None
    by_key = {node["key"]: node for node in nodes}
    width, height = PREVIEW_NODE_SIZE

    def ancestors(node: dict) -> list[dict]:
        chain, seen = [], {node["key"]}
        while (parent := by_key.get(node.get("parent") or "")) and parent["key"] not in seen:
            chain.append(parent)
            seen.add(parent["key"])
            node = parent
        return chain

    boxes = {}
    for node in nodes:
        x = y = 0.0
        for part in [node, *ancestors(node)]:
            position = part.get("position") or {}
            x, y = x + float(position.get("x", 0)), y + float(position.get("y", 0))
        try:
            category = registry.get(node["type"]).category
        except registry.UnknownNodeType:
            category = "unknown"
        label = node.get("label") or node["key"]
        if len(label) > PREVIEW_LABEL_CHARS:
            label = label[: PREVIEW_LABEL_CHARS - 1] + "…"
        boxes[node["key"]] = {
            "key": node["key"],
            "type": node["type"],
            "label": label,
            "category": category,
            "x": x,
            "y": y,
            "width": width,
            "height": height,
            "container": False,
        }
    # Deepest children first, so a Loop inside a Loop has grown before its parent grows.
    for node in sorted(nodes, key=lambda n: -len(ancestors(n))):
        parent = node.get("parent")
        if parent in boxes:
            child, box = boxes[node["key"]], boxes[parent]
            right = max(box["x"] + box["width"], child["x"] + child["width"] + PREVIEW_PADDING)
            bottom = max(box["y"] + box["height"], child["y"] + child["height"] + PREVIEW_PADDING)
            box["width"], box["height"], box["container"] = right - box["x"], bottom - box["y"], True

    edges = []
    for edge in document.get("edges") or []:
        source, target = boxes.get(edge["source"]), boxes.get(edge["target"])
        if source and target:
            x1, y1 = source["x"] + source["width"], source["y"] + height / 2
            x2, y2 = target["x"], target["y"] + height / 2
            bend = max(40.0, abs(x2 - x1) / 2)
            edges.append(f"M{x1:g} {y1:g} C{x1 + bend:g} {y1:g} {x2 - bend:g} {y2:g} {x2:g} {y2:g}")

    left = min(box["x"] for box in boxes.values()) - PREVIEW_PADDING
    top = min(box["y"] for box in boxes.values()) - PREVIEW_PADDING
    right = max(box["x"] + box["width"] for box in boxes.values()) + PREVIEW_PADDING
    bottom = max(box["y"] + box["height"] for box in boxes.values()) + PREVIEW_PADDING
    return {
        "view_box": f"{left:g} {top:g} {right - left:g} {bottom - top:g}",
        "containers": [box for box in boxes.values() if box["container"]],
        "nodes": [box for box in boxes.values() if not box["container"]],
        "edges": edges,
    }
