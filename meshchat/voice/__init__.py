"""Voice notes: speech encoded as Opus in Ogg, sent as a file of kind ``voice``.

* :mod:`~meshchat.voice.params` — the codec parameters and the limits;
* :mod:`~meshchat.voice.encode` — audio files and recorded samples to a note;
* :mod:`~meshchat.voice.decode` — a received note, checked, back to samples;
* :mod:`~meshchat.voice.pcm` — samples and WAV files;
* :mod:`~meshchat.voice.device` — the sound card and the microphone, where there are any.
"""

from meshchat.voice.decode import check_header, decode, duration_of
from meshchat.voice.device import Played, play, record, write_wav
from meshchat.voice.encode import VoiceNote, encode_file, encode_pcm, read_audio
from meshchat.voice.params import MAX_NOTE_BYTES, MAX_SECONDS, MEDIA_TYPE
from meshchat.voice.pcm import Pcm, pcm_from_wav, wav_bytes

__all__ = [
    "MAX_NOTE_BYTES",
    "MAX_SECONDS",
    "MEDIA_TYPE",
    "Pcm",
    "Played",
    "VoiceNote",
    "check_header",
    "decode",
    "duration_of",
    "encode_file",
    "encode_pcm",
    "pcm_from_wav",
    "play",
    "read_audio",
    "record",
    "wav_bytes",
    "write_wav",
]
