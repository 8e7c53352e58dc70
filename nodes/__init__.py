"""ComfyUI V3 adapters for EmoCAST.

One module per concern; each node only translates ComfyUI types and calls
`emocast_core`.  A node is listed in `NODE_CLASSES` only once it really works.
"""
from comfy_api.latest import ComfyExtension, io

NODE_CLASSES: list[type[io.ComfyNode]] = []


class EmoCASTExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODE_CLASSES)


async def comfy_entrypoint() -> EmoCASTExtension:
    return EmoCASTExtension()
