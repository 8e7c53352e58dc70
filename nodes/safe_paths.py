"""Names that arrive from a prompt and become paths: kept inside their folders.

ComfyUI does not check a Combo value against its list when a prompt comes
through the API, so any string can arrive. A folder name must be one entry of
a registered folder (no separators, no '..'), a file name must resolve below
one; anything else is refused with a message that says nothing about what lies
outside them. Links that the server's owner put inside a models folder are
followed: no prompt can create one, and linking model folders in is common.
"""
from __future__ import annotations

import os

# Room left for "_00001_.mp4"-style suffixes within the usual 255-byte name limit.
_MAX_NAME_BYTES = 200
_SHOWN = 60


def shown(value) -> str:
    """A user's value as an error message may repeat it: quoted, and cut if long."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…'"


def inside(path: str, roots) -> bool:
    """True when `path`, with '..' and '.' resolved, is one of `roots` or lies below one."""
    real = os.path.abspath(path)
    for root in roots:
        top = os.path.abspath(root)
        if real == top or real.startswith(top.rstrip(os.sep) + os.sep):
            return True
    return False


def entry_name(name, input_name: str, folder_label: str) -> str:
    """`name` as one entry of a folder listing: no separators, not '.' or '..', not empty."""
    if not isinstance(name, str) or not name or name in (".", "..") or "\0" in name \
            or "/" in name or "\\" in name or os.path.isabs(name):
        raise ValueError(f"{input_name}: {shown(name)} is not one of the entries of {folder_label}; "
                         "choose one from the list (refresh the page after adding one)")
    return name


def check_filename_prefix(prefix, input_name: str = "filename_prefix") -> str:
    """A save prefix ComfyUI can turn into a file name: each part short enough for the file system."""
    if not isinstance(prefix, str) or not prefix.strip():
        raise ValueError(f"{input_name} is empty: give a name such as 'EmoCAST/talking'")
    for part in prefix.replace("\\", "/").split("/"):
        if len(part.encode("utf-8")) > _MAX_NAME_BYTES:
            raise ValueError(f"{input_name}: the part {shown(part)} is {len(part.encode('utf-8'))} bytes long; "
                             f"keep each folder or file name under {_MAX_NAME_BYTES} bytes")
    return prefix
