"""Skill identity: who a skill is, who vouches for it, and how far they are trusted.

One package holds every piece a skill's identity is made of, so there is one
copy of each rule:

* :mod:`vak.identity.manifest`: the ``skill.yaml`` model and its strict loader
  (the manifest's JSON Schema ships in ``vak/identity/schemas/``);
* :mod:`vak.identity.keys`: Ed25519 keys, key ids and key files (one library:
  ``cryptography``; the formats of the PyNaCl days, byte for byte);
* :mod:`vak.identity.keyfile`: private files (0600, atomic, bounded reads,
  locks), also the audit log's key and HMAC secret;
* :mod:`vak.identity.signing`: sign and verify a skill directory;
* :mod:`vak.identity.trust`: :class:`~vak.identity.trust.Tier`, the one
  :class:`~vak.identity.trust.TrustedKey` (skill signers and log keys) and the
  trust store; :mod:`vak.identity.trustfile` edits trust store files;
* :mod:`vak.identity.ref`: :class:`~vak.identity.ref.SkillRef`, the one shape in
  which audit entries name a skill;
* :mod:`vak.identity.semver` and :mod:`vak.identity.floor`: version precedence
  and the version floor that refuses rollbacks;
* :mod:`vak.identity.validation`: compiled JSON Schema validators for tool
  input and output.

Module rule: a module is private (``_name``) when nothing outside this package
imports it. This ``__init__`` imports nothing, so that light readers (the audit
log's key file, the verifier) can import :mod:`vak.identity.keys` without
pulling in YAML or JSON Schema.
"""
