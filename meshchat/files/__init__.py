"""File, picture and voice-note transfer: the pure core (and one small file-system module).

* :mod:`~meshchat.files.manifest` — the announcement carried in a sealed message body;
* :mod:`~meshchat.files.chunks` — sealing chunks (XChaCha20-Poly1305, one key per file);
* :mod:`~meshchat.files.tree` — the BLAKE2b hash tree over ciphertext chunks;
* :mod:`~meshchat.files.wire` — request, piece and missing bodies;
* :mod:`~meshchat.files.transfer` — the receiver's state machine; :mod:`~meshchat.files.serve`
  the sender's; both return :mod:`~meshchat.files.effects`;
* :mod:`~meshchat.files.policy` — which files to take (limits by medium, auto-accept);
  :mod:`~meshchat.files.progress` — bytes, rate and time left;
* :mod:`~meshchat.files.names` — safe file names; :mod:`~meshchat.files.media` — media
  types against first bytes; :mod:`~meshchat.files.sink` — partial
  files, resumption and final names (the only module that touches files).
"""

from meshchat.files.chunks import new_key, open_chunk, prepare, seal_chunk, split
from meshchat.files.manifest import FileKind, FileManifest
from meshchat.files.names import safe_name
from meshchat.files.policy import Decision, FilePolicy, Verdict
from meshchat.files.progress import Progress
from meshchat.files.serve import Seeder, SentFile, ServeLimits
from meshchat.files.sink import FileSource, Sink, prepare_file
from meshchat.files.transfer import Download, Downloads, Limits
from meshchat.files.tree import HashTree, TreeVerifier
from meshchat.files.wire import Missing, Piece, Request, decode_body

__all__ = [
    "Decision",
    "Download",
    "Downloads",
    "FileKind",
    "FileManifest",
    "FilePolicy",
    "FileSource",
    "HashTree",
    "Limits",
    "Missing",
    "Piece",
    "Progress",
    "Request",
    "Seeder",
    "SentFile",
    "ServeLimits",
    "Sink",
    "TreeVerifier",
    "Verdict",
    "decode_body",
    "new_key",
    "open_chunk",
    "prepare",
    "prepare_file",
    "safe_name",
    "seal_chunk",
    "split",
]
