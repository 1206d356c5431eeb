"""Signed notes with more than one signature type: split the text from its signature lines.

:func:`vak.audit.checkpoint.parse_note` reads the log's own notes, whose every
signature line is a 4+64-byte Ed25519 note signature. A note a witness
handles also carries cosignature lines (4+8+64 bytes), so this module splits
a note at its last blank line (C2SP signed-note), checks the character rules
(valid text, no control character but newline, at most :data:`MAX_SIGNATURES`
lines) and hands the log's lines alone to ``parse_note``.

Example::

    >>> split_note("o\\n1\\nAA==\\n\\n\\u2014 o QUFB\\n")
    ('o\\n1\\nAA==\\n', ['\\u2014 o QUFB\\n'])
"""

from __future__ import annotations

import base64
import binascii

from vak.audit.checkpoint import Checkpoint, CheckpointSignatureError, SignedCheckpoint, parse_note
from vak.errors import WitnessError

__all__ = ["MAX_NOTE_BYTES", "MAX_SIGNATURES", "checkpoint_of_body", "log_checkpoint",
           "split_note"]

#: signature lines accepted in one note (the spec asks for at least 16)
MAX_SIGNATURES = 64
MAX_NOTE_BYTES = 64 << 10
_LOG_SIG = 4 + 64


def split_note(text: str) -> tuple[str, list[str]]:
    """``(text, signature lines)``; each line keeps its newline.

    Raises:
        WitnessError: (status 400) the note is malformed.
    """
    if len(text) > MAX_NOTE_BYTES or not text.endswith("\n"):
        raise WitnessError("note is too large or does not end in a newline", status=400)
    if any(c < " " and c != "\n" for c in text):
        raise WitnessError("note holds a control character", status=400)
    cut = text.rfind("\n\n", 0, len(text) - 1)
    if cut < 0:
        raise WitnessError("note has no blank line before its signatures", status=400)
    body, sigs = text[:cut + 1], text[cut + 2:].splitlines(keepends=True)
    if not sigs or len(sigs) > MAX_SIGNATURES or any(not s.startswith("\u2014 ") for s in sigs):
        raise WitnessError(f"note needs 1..{MAX_SIGNATURES} signature lines", status=400)
    return body, sigs


def _is_log_signature(line: str) -> bool:
    try:
        raw = base64.b64decode(line.rstrip("\n").rsplit(" ", 1)[-1], validate=True)
        return len(raw) == _LOG_SIG
    except (ValueError, binascii.Error):
        return False


def log_checkpoint(text: str) -> tuple[SignedCheckpoint, list[str]]:
    """The checkpoint with the log's own signatures, and the note's other signature lines.

    Raises:
        WitnessError: (status 400) malformed note or checkpoint; (403) no log signature.
    """
    body, sigs = split_note(text)
    mine = [s for s in sigs if _is_log_signature(s)]
    others = [s for s in sigs if not _is_log_signature(s)]
    if not mine:
        raise WitnessError("checkpoint carries no log signature", status=403)
    try:
        return parse_note(body + "\n" + "".join(mine)), others
    except CheckpointSignatureError as exc:
        raise WitnessError(f"checkpoint is malformed: {exc.message}", status=400) from None


_PLACEHOLDER = "\u2014 x " + base64.b64encode(bytes(_LOG_SIG)).decode() + "\n"


def checkpoint_of_body(body: str) -> Checkpoint:
    """The checkpoint a note body states (its signatures are checked elsewhere).

    ``parse_note`` reads whole notes only, so a placeholder signature line is
    added; it is never verified.

    Raises:
        CheckpointSignatureError: the body is not a canonical checkpoint body.
    """
    return parse_note(body + "\n" + _PLACEHOLDER).checkpoint
