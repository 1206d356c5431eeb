"""Editing a trust store file: add, revoke, save, keeping the operator's text.

``vak trust add|revoke`` and ``vak init`` change trust stores that people
also edit by hand, so an edit changes only the lines it must: a new entry is
inserted after the last one in the file's own indentation, a revocation sets
or inserts one ``revoked: true`` line; comments, blank lines, field order and
quoting of every other entry stay as they were. When the file's layout does
not allow that (a flow-style ``keys: [...]`` list with entries, say), the
file is re-rendered from the parsed entries, keeping its leading comment
block. Either way the new text is parsed again and must yield exactly the
intended store before it is written: an edit can never produce a store other
than the one asked for.

Example::

    >>> with TrustFile.edit("trust.yaml", create=True) as trust:     # doctest: +SKIP
    ...     trust.add(load_public_key("ci.key.pub"), Tier.TRUSTED, skills=["calculator"])
    ...     trust.revoke("ed25519:5bf5603f")

Invariants: :meth:`TrustFile.edit` holds an exclusive lock (``<file>.lock``)
from load to save, so concurrent editors never lose each other's changes;
:meth:`TrustFile.save` writes a temporary file, fsyncs it and renames it over
the old one (keeping its mode), so a crash leaves the old store or the new
one; a file changed by someone else since it was loaded is not overwritten.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vak.errors import ConfigError
from vak.identity.keyfile import file_lock, write_file_atomic
from vak.identity.keys import VerifyKey, format_public_key
from vak.identity.trust import (
    ENTRY_FIELDS,
    Tier,
    TrustedKey,
    TrustStore,
    parse_skills,
    read_trust_file,
)

__all__ = ["DEFAULT_HEADER", "TrustFile", "render_entry"]

DEFAULT_HEADER = (
    "# VAK trust store: the keys whose signatures this kernel accepts, and their tier.\n"
    "# trusted: skills run in-process; untrusted: skills run in the OS-sandboxed worker.\n"
    "# Edit with `vak trust add|list|revoke` or by hand (docs/MANIFEST.md, 'Trust store').\n"
)
_DASH = re.compile(r" *- +")
_MIN_PREFIX = 8


def _quote(text: str) -> str:
    """A YAML double-quoted scalar that the strict loader reads back as ``text``."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F or (code >= 0xA0 and not 0xD800 <= code < 0xE000
                                     and code not in (0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF)):
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:  # pragma: no cover - every code point above 0xFFFF is printable
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_entry(entry: TrustedKey) -> list[tuple[str, str]]:
    """``(field, YAML value)`` pairs of one entry, in :data:`ENTRY_FIELDS` order."""
    fields: dict[str, str] = {
        "key": _quote(format_public_key(entry.verify_key)),
        "tier": str(entry.tier),
    }
    if entry.skills is not None:
        fields["skills"] = "[" + ", ".join(_quote(s) for s in sorted(entry.skills)) + "]"
    if entry.comment:
        fields["comment"] = _quote(entry.comment)
    if entry.expires is not None:
        fields["expires"] = _quote(_rfc3339(entry.expires))
    if entry.revoked:
        fields["revoked"] = "true"
    return [(name, fields[name]) for name in ENTRY_FIELDS if name in fields]


def _render(header: str, entries: Iterable[TrustedKey]) -> str:
    body = []
    for entry in entries:
        lines = render_entry(entry)
        body.append(f"  - {lines[0][0]}: {lines[0][1]}\n")
        body.extend(f"    {name}: {value}\n" for name, value in lines[1:])
    return header + ("keys:\n" + "".join(body) if body else "keys: []\n")


def _header(text: str) -> str:
    """The file's leading comment block (what a re-render keeps)."""
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.lstrip().startswith("#"):
            break
        lines.append(line if line.endswith("\n") else line + "\n")
    return "".join(lines) or DEFAULT_HEADER


class TrustFile:
    """A trust store file loaded for editing: its text and the store that text holds."""

    __slots__ = ("_loaded", "_store", "_text", "path")

    def __init__(self, path: Path, text: str, store: TrustStore, loaded: str | None) -> None:
        self.path = path
        self._text = text
        self._store = store
        #: the file's text when loaded (None: it did not exist); save refuses if it changed
        self._loaded = loaded

    # ------------------------------------------------------------------ opening
    @classmethod
    def load(cls, path: str | Path, *, create: bool = False) -> TrustFile:
        """Load ``path`` for editing; with ``create``, a missing file starts empty.

        Raises:
            ConfigError: the file is missing (without ``create``), unreadable or invalid.
        """
        path = Path(path)
        if create and not path.exists() and not path.is_symlink():
            text = DEFAULT_HEADER + "keys: []\n"
            return cls(path, text, TrustStore((), str(path)), None)
        data = read_trust_file(path)
        store = TrustStore.from_text(data, str(path))
        text = data.decode("utf-8")  # from_text refused anything that is not UTF-8
        return cls(path, text, store, text)

    @classmethod
    @contextlib.contextmanager
    def edit(cls, path: str | Path, *, create: bool = False) -> Iterator[TrustFile]:
        """Lock ``path``, load it, yield it, and save it if the block succeeds.

        Raises:
            ConfigError: as for :meth:`load` and :meth:`save`.
        """
        path = Path(path)
        with file_lock(path, "trust store"):
            trust = cls.load(path, create=create)
            yield trust
            trust.save()

    # ------------------------------------------------------------------ reading
    @property
    def store(self) -> TrustStore:
        """The store as edited so far."""
        return self._store

    @property
    def text(self) -> str:
        """The file's text as edited so far."""
        return self._text

    def find(self, key_id: str) -> TrustedKey:
        """The entry whose key id is ``key_id`` or starts with it (>= 8 hex digits).

        Raises:
            ConfigError: no entry, or the prefix is too short or ambiguous.
        """
        wanted = key_id.strip().lower()
        if not wanted.startswith("ed25519:"):
            wanted = "ed25519:" + wanted
        exact = [k for k in self._store.keys if k.key_id == wanted]
        if exact:
            return exact[0]
        digits = wanted.removeprefix("ed25519:")
        if len(digits) < _MIN_PREFIX or not re.fullmatch(r"[0-9a-f]+", digits):
            raise ConfigError(
                f"{self.path}: {key_id[:80]!r} is not a key id", file=str(self.path),
                valid=f"a key id such as ed25519:5bf5603f... (at least {_MIN_PREFIX} hex "
                "digits of it)", fix="copy the key id from `vak trust list`",
            )
        matches = [k for k in self._store.keys if k.key_id.startswith(wanted)]
        if len(matches) != 1:
            raise ConfigError(
                f"{self.path}: {'no key' if not matches else 'more than one key'} "
                f"matches {wanted}", file=str(self.path),
                fix="copy the full key id from `vak trust list`",
            )
        return matches[0]

    # ------------------------------------------------------------------ editing
    def add(self, key: VerifyKey, tier: Tier, *, skills: Iterable[str] | None = None,
            comment: str = "", expires: datetime | None = None) -> TrustedKey:
        """Add ``key`` at ``tier`` (not saved until :meth:`save`).

        Raises:
            ConfigError: the key is already listed (revoked or not), or a value
                is invalid (naive ``expires``, a bad skill name, a non-tier).
        """
        if not isinstance(tier, Tier):
            raise ConfigError(f"{tier!r} is not a tier", field="tier",
                              valid="Tier.TRUSTED or Tier.UNTRUSTED")
        if expires is not None and expires.tzinfo is None:
            raise ConfigError("expires has no time zone", field="expires",
                              fix="pass an aware datetime (e.g. tzinfo=UTC)")
        if key.key_id in self._store:
            old = self._store.lookup(key.key_id)
            state = "revoked" if old.revoked else f"tier {old.tier}"
            raise ConfigError(
                f"{self.path}: key {key.key_id} is already in the trust store ({state})",
                file=str(self.path), key_id=key.key_id,
                fix="revoke it with `vak trust revoke` or edit its entry by hand",
            )
        if not isinstance(comment, str):
            raise ConfigError("comment must be a string", field="comment")
        names = parse_skills(None if skills is None else list(skills), "skills", str(self.path))
        entry = TrustedKey(key, tier=tier, skills=names, comment=comment, expires=expires)
        expected = TrustStore([*self._store.keys, entry], str(self.path))
        self._apply(self._inserted(entry), expected)
        return entry

    def revoke(self, key_id: str) -> TrustedKey:
        """Mark the entry ``key_id`` (or a unique prefix) revoked; a revoked one stays so.

        Raises:
            ConfigError: no such key (see :meth:`find`).
        """
        entry = self.find(key_id)
        if entry.revoked:
            return entry
        revoked = replace(entry, revoked=True)
        expected = TrustStore([revoked if k is entry else k for k in self._store.keys],
                              str(self.path))
        index = self._store.keys.index(entry)
        self._apply(self._revoked_text(index), expected)
        return revoked

    def save(self) -> None:
        """Write the edited text atomically (temp file, fsync, rename, keeping the mode).

        Raises:
            ConfigError: the file changed since it was loaded, or cannot be written.
        """
        current: str | None
        try:
            # bytes, not text mode: universal newlines would make a CRLF file look changed
            current = self.path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            current = None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.path}: cannot read: {exc}", file=str(self.path)) from None
        if current != self._loaded:
            raise ConfigError(
                f"{self.path}: the trust store changed since it was loaded; not overwriting it",
                file=str(self.path), fix="run the command again",
            )
        if current == self._text:
            return
        _atomic_write(self.path, self._text)
        self._loaded = self._text

    # ------------------------------------------------------------------ text
    def _apply(self, text: str | None, expected: TrustStore) -> None:
        """Take ``text`` if it parses to ``expected``; else re-render from ``expected``."""
        for candidate in (text, _render(_header(self._text), expected.keys)):
            if candidate is None:
                continue
            try:
                parsed = TrustStore.from_text(candidate, str(self.path))
            except ConfigError:
                continue
            if parsed == expected:
                self._text, self._store = candidate, parsed
                return
        raise ConfigError(  # pragma: no cover - the re-render always round-trips
            f"{self.path}: internal error: the edited trust store does not read back",
            file=str(self.path),
        )

    def _keys_node(self) -> Any:
        import yaml

        from vak.identity._yaml import _StrictLoader

        root = yaml.compose(self._text, Loader=_StrictLoader)
        if not isinstance(root, yaml.MappingNode):
            return None  # pragma: no cover - a loaded store is a mapping
        for key_node, value_node in root.value:
            if key_node.value == "keys":
                return key_node, value_node
        return None  # pragma: no cover - a loaded store always has 'keys'

    def _inserted(self, entry: TrustedKey) -> str | None:
        """The text with ``entry`` appended in the file's style, or None to re-render."""
        import yaml

        found = self._keys_node()
        if found is None:
            return None
        key_node, seq = found
        lines = render_entry(entry)
        text = self._text
        if isinstance(seq, yaml.SequenceNode) and seq.flow_style and not seq.value:
            indent = " " * (key_node.start_mark.column + 2)
            block = f"\n{indent}- {lines[0][0]}: {lines[0][1]}" + "".join(
                f"\n{indent}  {name}: {value}" for name, value in lines[1:])
            return text[:seq.start_mark.index] + block + text[seq.end_mark.index:]
        if not isinstance(seq, yaml.SequenceNode) or seq.flow_style or not seq.value:
            return None
        first = seq.value[0]
        line_start = text.rfind("\n", 0, first.start_mark.index) + 1
        prefix = text[line_start:first.start_mark.index]
        if not _DASH.fullmatch(prefix) or not isinstance(first, yaml.MappingNode) \
                or first.flow_style:
            return None
        indent = " " * first.start_mark.column
        block = f"{prefix}{lines[0][0]}: {lines[0][1]}" + "".join(
            f"\n{indent}{name}: {value}" for name, value in lines[1:])
        return _insert_after_line(text, _end_index(seq.value[-1]), block)

    def _revoked_text(self, index: int) -> str | None:
        """The text with entry ``index`` revoked in place, or None to re-render."""
        import yaml

        found = self._keys_node()
        if found is None:
            return None
        _key_node, seq = found
        if not isinstance(seq, yaml.SequenceNode) or seq.flow_style:
            return None
        item = seq.value[index]
        if not isinstance(item, yaml.MappingNode) or item.flow_style:
            return None
        text = self._text
        for name_node, value_node in item.value:
            if name_node.value == "revoked":
                start, end = value_node.start_mark.index, value_node.end_mark.index
                return text[:start] + "true" + text[end:]
        line = " " * item.start_mark.column + "revoked: true"
        return _insert_after_line(text, _end_index(item), line)


def _end_index(node: Any) -> int:
    """Where the text of ``node`` ends: its last scalar or flow collection."""
    import yaml

    while (isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style
           and node.value):
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    end: int = node.end_mark.index
    return end


def _insert_after_line(text: str, index: int, block: str) -> str:
    """``text`` with ``block`` as new line(s) after the line holding ``index``."""
    newline = text.find("\n", index)
    if newline < 0:
        return text + "\n" + block + "\n"
    return text[:newline + 1] + block + "\n" + text[newline + 1:]


def _atomic_write(path: Path, text: str) -> None:
    try:
        write_file_atomic(path, text.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the trust store: {exc.strerror}",
                          file=str(path)) from None
