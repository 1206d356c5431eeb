"""Loading and validating the Cedar schema and policy files at kernel start.

Invariants established by :func:`load_policies` (it raises otherwise):

* exactly one ``*.cedarschema`` among the directories (the shipped one);
* every ``*.cedar`` file parses, every policy in it carries a unique ``@id``,
  and all of them validate against the schema;
* a failure names the file, the line of the offending policy and Cedar's own
  message, so an operator can fix it without guessing.

Cedar's messages carry no positions and number policies ``policy0..N`` over
the whole text, so each file is split into its policy statements here (at
top-level ``;`` outside strings and comments) to map errors back to lines.

Example::

    >>> loaded = load_policies([SHIPPED_POLICY_DIR])          # doctest: +SKIP
    >>> loaded.digest                                         # doctest: +SKIP
    'sha256:...'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cedarpy

from vak.errors import PolicyError

__all__ = [
    "LoadedPolicies",
    "PolicyStatement",
    "load_policies",
    "loaded_from_record",
    "name_policies",
    "policy_ids_for",
    "policy_set_digest",
    "policy_set_record",
    "split_statements",
]

_ID_ANNOTATION = re.compile(r'@id\s*\(\s*"((?:[^"\\]|\\.)*)"\s*\)')
_POLICY_N = re.compile(r"policy(\d+)")
_POLICY_N_TOKEN = re.compile(r"\bpolicy(\d+)\b")


@dataclass(frozen=True, slots=True)
class PolicyStatement:
    """One policy statement of a file: its text, where it starts, and its @id."""

    file: str
    line: int
    text: str
    policy_id: str  # the @id annotation ('' when missing; loading then fails)
    #: a permit annotated ``@approval("required")`` (set by the loader from Cedar's
    #: own parse of the annotations, never by a regex over the text)
    needs_approval: bool = False


@dataclass(frozen=True, slots=True)
class LoadedPolicies:
    """A validated policy set, ready for :class:`vak.policy.engine.PolicyEngine`."""

    schema_text: str
    schema_file: str
    statements: tuple[PolicyStatement, ...]
    #: sha256 over schema and every policy file (name + bytes), in load order
    digest: str
    #: (file name, text) of every policy file in load order: what the digest covers
    files: tuple[tuple[str, str], ...] = ()

    @property
    def policy_text(self) -> str:
        """All statements joined, in order: Cedar numbers them policy0..N."""
        return "\n".join(s.text for s in self.statements)

    @property
    def ids(self) -> tuple[str, ...]:
        """The @ids, indexed like Cedar's positional ``policyN`` names."""
        return tuple(s.policy_id for s in self.statements)

    @property
    def approval_ids(self) -> frozenset[str]:
        """@ids of the permits annotated ``@approval("required")`` (docs/POLICY.md,
        'Approvals'): an Allow they determine needs a person's signed approval."""
        return frozenset(s.policy_id for s in self.statements if s.needs_approval)


def split_statements(text: str, file: str) -> list[PolicyStatement]:
    """Split Cedar policy text into statements at top-level ``;``.

    Comments (``//``) and string literals are skipped so that a ``;`` in them
    does not split. Trailing text without ``;`` is kept as a statement so the
    parser reports it.
    """
    out: list[PolicyStatement] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
            continue
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == ";":
            out.append(_statement(text, start, i + 1, file))
            start = i + 1
        i += 1
    if _strip_comments(text[start:]).strip():
        out.append(_statement(text, start, n, file))
    return out


def _strip_comments(chunk: str) -> str:
    return "\n".join(line.split("//", 1)[0] for line in chunk.splitlines())


def _statement(text: str, start: int, end: int, file: str) -> PolicyStatement:
    chunk = text[start:end]
    lead = len(chunk) - len(chunk.lstrip())
    # skip leading comment lines so the reported line is the policy's own
    body_offset = start + lead
    for line in chunk[lead:].splitlines(keepends=True):
        if line.lstrip().startswith("//") or not line.strip():
            body_offset += len(line)
        else:
            break
    line_no = text.count("\n", 0, body_offset) + 1
    match = _ID_ANNOTATION.search(_strip_comments(chunk))
    return PolicyStatement(file, line_no, chunk, match.group(1) if match else "")


def _files(dirs: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    schemas: list[Path] = []
    policies: list[Path] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise PolicyError(f"{d}: policy directory not found", file=str(d))
        schemas.extend(sorted(d.glob("*.cedarschema")))
        policies.extend(sorted(d.glob("*.cedar")))
    return schemas, policies


def load_policies(dirs: Iterable[Path]) -> LoadedPolicies:
    """Load and validate the schema and every policy file in ``dirs`` (in order).

    Raises:
        PolicyError: missing/duplicate schema, unreadable file, a parse or
            validation error, a policy without ``@id`` or a duplicate ``@id``
            (the message names file and line).
    """
    schemas, files = _files(dirs)
    if len(schemas) != 1:
        raise PolicyError(
            f"expected exactly one *.cedarschema across policy dirs, found {len(schemas)}",
            files=[str(s) for s in schemas],
        )
    schema_file = schemas[0]
    schema_text = schema_file.read_text(encoding="utf-8")
    try:
        schema = cedarpy.Schema.from_str(schema_text)
    except ValueError as exc:
        raise PolicyError(
            f"{schema_file}: invalid Cedar schema: {exc}", file=str(schema_file)
        ) from None

    statements: list[PolicyStatement] = []
    seen: dict[str, PolicyStatement] = {}
    texts: list[tuple[str, str]] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeError) as exc:
            raise PolicyError(f"{f}: cannot read policy file: {exc}", file=str(f)) from None
        texts.append((f.name, text))
        file_stmts = split_statements(text, str(f))
        for k, st in enumerate(file_stmts):
            _check_statement(st, schema)
            if _approval_annotation(st):
                file_stmts[k] = st = dataclasses.replace(st, needs_approval=True)
            if not st.policy_id:
                raise PolicyError(
                    f"{st.file}:{st.line}: policy has no @id annotation",
                    file=st.file,
                    line=st.line,
                    fix='add @id("your.policy-name") above it',
                )
            if st.policy_id in seen:
                first = seen[st.policy_id]
                raise PolicyError(
                    f"{st.file}:{st.line}: duplicate @id {st.policy_id!r} "
                    f"(first at {first.file}:{first.line})",
                    file=st.file,
                    line=st.line,
                )
            seen[st.policy_id] = st
        statements.extend(file_stmts)
    return LoadedPolicies(
        schema_text, str(schema_file), tuple(statements),
        policy_set_digest(schema_text, texts), tuple(texts),
    )


def policy_set_digest(schema_text: str, files: Iterable[tuple[str, str]]) -> str:
    """The content address of a policy set: sha256 over the schema and each (name, text).

    docs/AUDIT-FORMAT.md (section 10) defines these bytes, so that a replayer can
    check a recorded ``policy_set`` entry against the digest every decision cites.
    """
    h = hashlib.sha256()
    h.update(b"schema\0" + schema_text.encode() + b"\0")
    for name, text in files:
        h.update(name.encode() + b"\0" + text.encode() + b"\0")
    return "sha256:" + h.hexdigest()


def policy_set_record(loaded: LoadedPolicies) -> dict[str, object]:
    """The fields of the ``policy_set`` audit entry that records ``loaded`` whole."""
    return {
        "policy_set": loaded.digest,
        "schema": loaded.schema_text,
        "files": [{"name": name, "text": text} for name, text in loaded.files],
    }


def loaded_from_record(record: object) -> LoadedPolicies:
    """The policy set a ``policy_set`` entry recorded (parsed, not re-validated).

    Raises:
        PolicyError: a field is missing or of the wrong type, or the text does not
            hash to the recorded digest (the record was altered).
    """
    if not isinstance(record, dict):
        raise PolicyError("policy_set record is not an object", field="policy_set")
    digest, schema_text = record.get("policy_set"), record.get("schema")
    files = record.get("files")
    if not (isinstance(digest, str) and isinstance(schema_text, str)
            and isinstance(files, list)):
        raise PolicyError("policy_set record needs string policy_set and schema and a files "
                          "list", field="policy_set")
    texts: list[tuple[str, str]] = []
    for item in files:
        name = item.get("name") if isinstance(item, dict) else None
        text = item.get("text") if isinstance(item, dict) else None
        if not (isinstance(name, str) and isinstance(text, str)):
            raise PolicyError("policy_set files must be {name, text} strings",
                              field="policy_set.files")
        texts.append((name, text))
    actual = policy_set_digest(schema_text, texts)
    if actual != digest:
        raise PolicyError(f"policy_set {digest[:19]}... does not match its text ({actual[:19]}...)",
                          field="policy_set.policy_set")
    statements = []
    for name, text in texts:
        for st in split_statements(text, name):
            try:
                approval = _approval_annotation(st)
            except (PolicyError, ValueError):
                approval = False
            statements.append(dataclasses.replace(st, needs_approval=approval) if approval else st)
    return LoadedPolicies(schema_text, "recorded", tuple(statements), digest, tuple(texts))


def _approval_annotation(st: PolicyStatement) -> bool:
    """Whether ``st`` is a permit with ``@approval("required")``, read from Cedar's JSON.

    Raises:
        PolicyError: ``@approval`` with another value, or on a forbid (a forbid
            cannot be approved away: the annotation there is an operator's mistake).
    """
    doc = json.loads(cedarpy.policies_to_json_str(st.text))
    (policy,) = doc["staticPolicies"].values()
    value = policy.get("annotations", {}).get("approval")
    if value is None:
        return False
    if value != "required" or policy.get("effect") != "permit":
        raise PolicyError(
            f"{st.file}:{st.line}: policy {st.policy_id!r}: @approval({json.dumps(value)}) "
            f"on a {policy.get('effect')}", file=st.file, line=st.line,
            fix='write @approval("required") on a permit only',
        )
    return True


def _check_statement(st: PolicyStatement, schema: cedarpy.Schema) -> None:
    try:
        cedarpy.PolicySet.from_str(st.text)
    except ValueError as exc:
        raise PolicyError(
            f"{st.file}:{st.line}: Cedar parse error: {exc}", file=st.file, line=st.line
        ) from None
    result = cedarpy.validate_policies(st.text, schema)
    if not result.validation_passed:
        msgs = "; ".join(e.error for e in result.errors) or "validation failed"
        raise PolicyError(
            f"{st.file}:{st.line}: policy {st.policy_id or '(no @id)'} does not validate "
            f"against the schema: {msgs}",
            file=st.file,
            line=st.line,
            policy_id=st.policy_id,
        )


def policy_ids_for(names: Iterable[str], ids: tuple[str, ...]) -> list[str]:
    """Map Cedar's positional ``policyN`` names (or error strings) to @ids."""
    out: list[str] = []
    for name in names:
        m = _POLICY_N.search(name)
        if m and int(m.group(1)) < len(ids):
            out.append(ids[int(m.group(1))])
        else:
            out.append(json.dumps(name)[1:-1][:120])
    return out


def name_policies(text: str, ids: tuple[str, ...]) -> str:
    """``text`` (a Cedar error message) with positional ``policyN`` names replaced by @ids.

    Positional names depend on which policies were evaluated together; the @id
    is what an operator can find in a file.
    """

    def sub(m: re.Match[str]) -> str:
        n = int(m.group(1))
        return ids[n] if n < len(ids) else m.group(0)

    return _POLICY_N_TOKEN.sub(sub, text)
