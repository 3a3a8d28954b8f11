"""``meshchat send-voice`` and ``meshchat play``: voice notes from the command line.

``send-voice TARGET --file AUDIO`` encodes an audio file (``--record SECONDS``: the
microphone) as a voice note (:mod:`meshchat.voice`), keeps it in the home's ``voice`` folder
(the node serves it from there until every recipient has it; ``meshchat panic`` erases it)
and sends it through the running node as a file of kind voice. ``play NOTE`` decodes a
received note (its message id, or the first hex digits of it, as ``meshchat log`` shows; or
the path of an Ogg/Opus file) and plays it on the sound card, or, where there is none, writes
a WAV file and says where (``--out WAV`` always writes one).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from meshchat.cli.common import emit_json, say
from meshchat.display import safe_line
from meshchat.home import Home
from meshchat.voice import (
    MAX_SECONDS,
    Played,
    VoiceNote,
    decode,
    encode_file,
    encode_pcm,
    play,
    record,
    write_wav,
)
from meshchat.voice.saved import free_path, keep_note, read_note

__all__ = ["add_voice_parsers", "cmd_play", "cmd_send_voice"]


def add_voice_parsers(sub: Any) -> None:
    """``send-voice`` and ``play`` on the ``meshchat`` parser's sub-commands."""
    help_text = "send a voice note (Opus, about 2 kB per second) to a contact, #channel or +group"
    p = sub.add_parser("send-voice", help=help_text, description=help_text)
    p.set_defaults(fn=cmd_send_voice)
    p.add_argument("to", help="contact name, node id prefix, #channel or +group")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", metavar="AUDIO", help="an audio file (WAV, FLAC, MP3, Ogg...)")
    source.add_argument(
        "--record",
        metavar="SECONDS",
        type=float,
        help=f"record from the microphone (at most {MAX_SECONDS} s)",
    )
    p.add_argument("--caption", default="", help="a line of text sent with the note")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    help_text = "play a received voice note (or write it as a WAV file)"
    p = sub.add_parser("play", help=help_text, description=help_text)
    p.set_defaults(fn=cmd_play)
    p.add_argument(
        "note",
        metavar="MSG_ID|FILE",
        help="the note's message id or its first hex digits, as 'meshchat log' shows; "
        "or an Ogg/Opus file",
    )
    p.add_argument("--out", metavar="WAV", help="write a WAV file here instead of playing")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _describe(note: VoiceNote) -> str:
    rate = len(note.data) * 8 / note.duration / 1000 if note.duration else 0.0
    return f"{note.duration:.1f} s, {len(note.data)} bytes ({rate:.1f} kbit/s)"


def cmd_send_voice(args: argparse.Namespace, home: Home) -> int:
    from meshchat.cli.files_bridge import send_file

    if args.file is not None:
        note = encode_file(Path(args.file))
    else:
        note = encode_pcm(record(args.record))
    path = keep_note(home.voice_notes, note)
    try:
        sent = send_file(home, args.to, path, caption=args.caption)
    except BaseException:
        path.unlink(missing_ok=True)  # nothing was announced: nothing to serve
        raise
    if args.json:
        emit_json({**sent, "duration": note.duration, "bytes": len(note.data)})
    else:
        say(f"voice note {_describe(note)} -> {safe_line(str(sent.get('to', args.to)))}")
    return 0


def cmd_play(args: argparse.Namespace, home: Home) -> int:
    from meshchat.cli.files_bridge import received_note

    given = Path(args.note)
    path = given if given.is_file() else received_note(home, args.note)
    pcm = decode(read_note(path))
    if args.out is not None:
        played = Played(wav=write_wav(pcm, Path(args.out)), why="--out")
    else:
        played = play(pcm, free_path(path.with_suffix(".wav")))
    if args.json:
        emit_json(
            {
                "note": str(path),
                "duration": pcm.duration,
                "device": played.device,
                "wav": None if played.wav is None else str(played.wav),
            }
        )
    elif played.wav is not None:
        why = "" if played.why == "--out" else f"{played.why}: "
        say(f"{why}wrote {pcm.duration:.1f} s to {played.wav}")
    else:
        say(f"played {pcm.duration:.1f} s on {safe_line(played.device or '')}")
    return 0
