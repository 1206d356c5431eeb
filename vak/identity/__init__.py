"""Skill identity: who a skill is, who vouches for it, and how far they are trusted.

One package holds every piece a skill's identity is made of, so there is one
copy of each rule:

* :mod:`vak.identity.manifest`: the ``skill.yaml`` model and its strict loader
  (the manifest's JSON Schema ships in ``vak/identity/schemas/``);
* :mod:`vak.identity.keys`: Ed25519 key files and key ids (one library:
  ``cryptography``), also used for the audit log's key file;
* :mod:`vak.identity.signing`: sign and verify a skill directory;
* :mod:`vak.identity.trust`: the trust store (key id -> :class:`~vak.identity.trust.Tier`);
* :mod:`vak.identity.validation`: compiled JSON Schema validators for tool
  input and output;
* :mod:`vak.identity.ref`: :class:`~vak.identity.ref.SkillRef`, the one shape in
  which audit entries name a skill.

Module rule: a module is private (``_name``) when nothing outside this package
imports it. This ``__init__`` imports nothing, so that light readers (the audit
log's key file, the verifier) can import :mod:`vak.identity.keys` without
pulling in YAML or JSON Schema.
"""
