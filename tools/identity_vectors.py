"""Write tests/vectors/identity/pynacl.json: known answers produced by PyNaCl (libsodium).

VAK signed skills and encrypted its private key files with PyNaCl until the
identity package moved to one Ed25519 library (``cryptography``). These
vectors pin what libsodium produced, so the tests prove that every signature,
key file and passphrase-encrypted seed written before the move still
verifies and loads after it. Run it only where PyNaCl is installed::

    python tools/identity_vectors.py

Nothing here is random: seeds, salts, nonces and passphrases are fixed, so a
re-run writes the same file (libsodium is deterministic for all of them).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import nacl.pwhash
import nacl.secret
from nacl.signing import SigningKey

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "identity" / "pynacl.json"
_KEY_FORMAT = "vak-ed25519-private-key/1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _seed(tag: int) -> bytes:
    return hashlib.sha256(b"vak identity vector seed %d" % tag).digest()


def _key_id(public: bytes) -> str:
    return "ed25519:" + hashlib.sha256(public).hexdigest()[:32]


def _ed25519() -> list[dict[str, str]]:
    messages = [b"", b"abc", b"\x00" * 64, bytes(range(256)) * 3,
                b'{"module":{"path":"a.wasm","sha256":"00"},"name":"a"}']
    out = []
    for i, message in enumerate(messages):
        key = SigningKey(_seed(i))
        out.append({
            "seed": _b64(bytes(key)),
            "public": _b64(bytes(key.verify_key)),
            "key_id": _key_id(bytes(key.verify_key)),
            "message": _b64(message),
            "signature": _b64(key.sign(message).signature),
        })
    return out


def _argon2id() -> list[dict[str, Any]]:
    cases = [(b"correct horse", 1, 8192), (b"", 2, 65536), (b"\xff" * 40, 3, 1 << 20)]
    out = []
    for i, (password, ops, mem) in enumerate(cases):
        salt = hashlib.sha256(b"salt %d" % i).digest()[:16]
        key = nacl.pwhash.argon2id.kdf(32, password, salt, opslimit=ops, memlimit=mem)
        out.append({"password": _b64(password), "salt": _b64(salt), "opslimit": ops,
                    "memlimit": mem, "key": _b64(key)})
    return out


def _secretbox() -> list[dict[str, str]]:
    out = []
    for i, size in enumerate((0, 1, 15, 16, 31, 32, 33, 63, 64, 65, 127, 128, 200, 1000)):
        key = hashlib.sha256(b"box key %d" % i).digest()
        nonce = hashlib.sha256(b"box nonce %d" % i).digest()[:24]
        message = (hashlib.sha256(b"box message %d" % i).digest() * 40)[:size]
        box = nacl.secret.SecretBox(key).encrypt(message, nonce)
        out.append({"key": _b64(key), "nonce": _b64(nonce), "message": _b64(message),
                    "box": _b64(bytes(box))})
    return out


def _key_files() -> list[dict[str, Any]]:
    """Private key files exactly as the PyNaCl-based ``vak.keys`` wrote them."""
    out = []
    for name, passphrase, ops, mem in (
        ("plain", None, 0, 0),
        ("encrypted-interactive", b"open sesame", nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
         nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE),
        ("encrypted-min", b"pw", nacl.pwhash.argon2id.OPSLIMIT_MIN,
         nacl.pwhash.argon2id.MEMLIMIT_MIN),
    ):
        key = SigningKey(_seed(100 + len(out)))
        public = bytes(key.verify_key)
        doc: dict[str, Any] = {"format": _KEY_FORMAT, "key_id": _key_id(public),
                               "public_key": _b64(public), "comment": f"vector {name}"}
        if passphrase is None:
            doc["seed"] = _b64(bytes(key))
        else:
            salt = hashlib.sha256(name.encode()).digest()[:16]
            box_key = nacl.pwhash.argon2id.kdf(32, passphrase, salt, opslimit=ops, memlimit=mem)
            nonce = hashlib.sha256(b"nonce " + name.encode()).digest()[:24]
            sealed = nacl.secret.SecretBox(box_key).encrypt(bytes(key), nonce)
            doc["encrypted"] = {"kdf": "argon2id", "opslimit": ops, "memlimit": mem,
                                "salt": _b64(salt), "cipher": "xsalsa20poly1305",
                                "ciphertext": _b64(bytes(sealed))}
        out.append({
            "name": name,
            "passphrase": None if passphrase is None else _b64(passphrase),
            "private": json.dumps(doc, indent=2) + "\n",
            "public": f"vak-ed25519 {_b64(public)} {_key_id(public)}\n",
            "seed": _b64(bytes(key)),
        })
    return out


def _signed_skill() -> dict[str, str]:
    """A skill directory signed by ``vak-skill-sign`` (its manifest text and module)."""
    import tempfile

    from vak.identity import signing

    module = b"\x00asm\x01\x00\x00\x00"
    manifest = (
        "name: vector\nversion: 1.0.0-rc.1\ndescription: A known-answer skill.\n"
        "author: VAK tests\nlicense: Apache-2.0\nmodule:\n  path: vector.wasm\n"
        "exports:\n  - name: execute\n    description: nothing\n"
        "    input_schema: {type: object}\n    output_schema: {type: object}\n"
    )
    key = SigningKey(_seed(200))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "skill.yaml").write_text(manifest, encoding="utf-8")
        (root / "vector.wasm").write_bytes(module)
        signing.sign_skill(root, key)
        signed = (root / "skill.yaml").read_text(encoding="utf-8")
    return {"skill.yaml": signed, "module_path": "vector.wasm", "module": _b64(module),
            "trust_key": f"vak-ed25519 {_b64(bytes(key.verify_key))}"}


def main() -> None:
    doc = {
        "about": "known answers from PyNaCl/libsodium; written by tools/identity_vectors.py",
        "ed25519": _ed25519(),
        "argon2id": _argon2id(),
        "secretbox": _secretbox(),
        "key_files": _key_files(),
        "signed_skill": _signed_skill(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
