"""The control socket's file ops (see :mod:`meshchat.control`).

==========  ====================================  ==========================================
op          request fields                        reply fields
==========  ====================================  ==========================================
send_file   to, path (absolute), kind (file,      transfer (as ``transfers`` lists it)
            image, voice; default file),
            caption, media_type (optional)
transfers   (none)                                transfers: every one, live and finished
                                                  (root, direction, state, name, size,
                                                  media_type, kind, caption, conversation,
                                                  msg_id, peer, path, error, started_ms,
                                                  finished_ms, held, rate, eta_s, served)
accept_file id (hex prefix of root or msg id)     transfer
==========  ====================================  ==========================================
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshchat.errors import UsageError
from meshchat.files.manifest import FileKind

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["FILE_OPS", "control_op"]

FILE_OPS = frozenset({"send_file", "transfers", "accept_file"})


async def control_op(node: Node, request: dict[str, Any]) -> dict[str, Any]:
    op = request["op"]
    if op == "transfers":
        return {"transfers": [t.to_json() for t in await node.files.transfers()]}
    if op == "accept_file":
        return {"transfer": (await node.files.accept(str(request["id"]))).to_json()}
    path = Path(str(request["path"]))
    if not path.is_absolute():
        raise UsageError("the path must be absolute (the node may run in another folder)")
    kind_name = str(request.get("kind", "file")).upper()
    if kind_name not in FileKind.__members__:
        raise UsageError("kind is file, image or voice")
    media_type = request.get("media_type")
    transfer = await node.files.send(
        str(request["to"]),
        path,
        kind=FileKind[kind_name],
        caption=str(request.get("caption", "")),
        media_type=str(media_type) if media_type else None,
    )
    return {"transfer": transfer.to_json()}
