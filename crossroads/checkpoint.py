"""Signed checkpoints of the audit log, in the C2SP tlog-checkpoint and signed-note formats.

A checkpoint commits the log to its size and root hash. Its body (C2SP tlog-checkpoint) is

    <origin>\\n<size in decimal>\\n<base64 root hash>\\n

and it travels as a C2SP signed note: the body, a blank line, then one signature line per
signer, "— <key name> <base64(key id || Ed25519 signature of the body)>\\n", where the key id
is the first 4 bytes of SHA-256(key name || "\\n" || 0x01 || 32-byte public key). Any
signed-note verifier (Go's golang.org/x/mod/sumdb/note, transparency-dev) can check it with
the verifier key given by `verifier_key`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from crossroads.merkle import HASH_SIZE, RootHash, TreeSize

__all__ = [
    "PRIVATE_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "Checkpoint",
    "CheckpointError",
    "checkpoint_body",
    "key_id",
    "load_or_create_private_key",
    "load_public_key",
    "open_note",
    "parse_checkpoint",
    "sign_checkpoint",
    "sign_note",
    "verifier_key",
    "verify_checkpoint",
]

PRIVATE_KEY_FILE = "audit.key"  # PKCS#8 PEM, mode 0600
PUBLIC_KEY_FILE = "audit.pub"  # SubjectPublicKeyInfo PEM
_ED25519 = b"\x01"  # the signed-note signature type of Ed25519
_DASH = "\u2014 "  # em dash and space open every signature line
_MAX_SIGNATURES = 100  # as Go's note.Open: a note with more is refused


class CheckpointError(ValueError):
    """A checkpoint that is malformed, unsigned by the expected key, or whose signature fails."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: TreeSize
    root: RootHash


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _check_name(key_name: str) -> None:
    if not key_name or any(c.isspace() or c == "+" for c in key_name):
        raise CheckpointError(f"key name must be non-empty, without spaces or '+', got {key_name!r}")


def key_id(key_name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte signed-note key id: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(key_name.encode() + b"\n" + _ED25519 + _raw_public(public_key)).digest()[:4]


def verifier_key(key_name: str, public_key: Ed25519PublicKey) -> str:
    """The signed-note verifier key "<name>+<hex key id>+<base64(0x01 || public key)>"."""
    encoded = base64.b64encode(_ED25519 + _raw_public(public_key)).decode()
    return f"{key_name}+{key_id(key_name, public_key).hex()}+{encoded}"


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The tlog-checkpoint body: origin, size and base64 root, each on its own line."""
    if not origin or "\n" in origin or size < 0 or len(root) != HASH_SIZE:
        raise CheckpointError(f"bad checkpoint fields: origin {origin!r}, size {size}, root of {len(root)} bytes")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_note(text: str, private_key: Ed25519PrivateKey, key_name: str) -> str:
    """`text` (ending in a newline) as a signed note with one Ed25519 signature by `key_name`."""
    _check_name(key_name)
    if not text.endswith("\n") or "\n\n" in text:
        raise CheckpointError("a note text ends in a newline and has no blank line")
    signature = private_key.sign(text.encode())
    blob = base64.b64encode(key_id(key_name, private_key.public_key()) + signature).decode()
    return f"{text}\n{_DASH}{key_name} {blob}\n"


def sign_checkpoint(origin: str, size: int, root: bytes, private_key: Ed25519PrivateKey, key_name: str) -> str:
    """The signed note of the checkpoint (origin, size, root), signed by `private_key` as `key_name`."""
    return sign_note(checkpoint_body(origin, size, root), private_key, key_name)


def _split_note(text: str) -> tuple[str, list[str]]:
    if not text.endswith("\n") or "\n\n" not in text:
        raise CheckpointError("a signed note is a text, a blank line and signature lines, ending in a newline")
    cut = text.rindex("\n\n")
    body, lines = text[: cut + 1], text[cut + 2 : -1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise CheckpointError(f"a signed note may carry at most {_MAX_SIGNATURES} signatures")
    return body, lines


def parse_checkpoint(body: str) -> Checkpoint:
    """The fields of a checkpoint body (no signature check; see `verify_checkpoint`)."""
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "" or not lines[0]:
        raise CheckpointError("a checkpoint body has an origin, a size and a root hash line")
    size_text = lines[1]
    if not size_text.isascii() or not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise CheckpointError(f"checkpoint size must be a decimal number, got {size_text!r}")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error as exc:
        raise CheckpointError(f"checkpoint root is not base64: {lines[2]!r}") from exc
    if len(root) != HASH_SIZE:
        raise CheckpointError(f"checkpoint root must be {HASH_SIZE} bytes, got {len(root)}")
    return Checkpoint(lines[0], TreeSize(int(size_text)), RootHash(root))


def verify_checkpoint(text: str, public_key: Ed25519PublicKey, key_name: str) -> Checkpoint:
    """The checkpoint in the signed note `text`, if `key_name` with `public_key` signed it.

    Raises CheckpointError as `open_note` does, or when the text is not a checkpoint body.
    """
    return parse_checkpoint(open_note(text, public_key, key_name))


def open_note(text: str, public_key: Ed25519PublicKey, key_name: str) -> str:
    """The text of the signed note `text`, if `key_name` with `public_key` signed it.

    Lines from other signers are ignored; the first line naming this key (name and key id)
    decides, as in the signed-note spec. Raises CheckpointError when the note is malformed,
    carries no signature by this key, or the signature does not verify.
    """
    body, lines = _split_note(text)
    expected_id = key_id(key_name, public_key)
    for line in lines:
        if not line.startswith(_DASH) or line.count(" ") != 2:
            raise CheckpointError(f"malformed signature line: {line!r}")
        name, blob = line[len(_DASH) :].split(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except binascii.Error as exc:
            raise CheckpointError(f"signature of {name} is not base64") from exc
        if name != key_name or raw[:4] != expected_id:
            continue
        try:
            public_key.verify(raw[4:], body.encode())
        except InvalidSignature as exc:
            raise CheckpointError(f"the signature of {key_name} does not verify") from exc
        return body
    raise CheckpointError(f"the checkpoint carries no signature by {key_name}")


def load_or_create_private_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The log's signing key from `keys_dir`/audit.key, created (with audit.pub) when absent."""
    private_path = keys_dir / PRIVATE_KEY_FILE
    if private_path.exists():
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointError(f"{private_path} does not hold an Ed25519 private key")
        return key
    keys_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # create with mode 0600 from the start: never a moment where the key is world-readable
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (keys_dir / PUBLIC_KEY_FILE).write_bytes(public_pem)
    return key


def load_public_key(keys_dir: Path) -> Ed25519PublicKey:
    """The log's public key from `keys_dir`/audit.pub (PEM, or the 32 raw bytes)."""
    path = keys_dir / PUBLIC_KEY_FILE
    if not path.exists():
        raise CheckpointError(f"no audit public key at {path}")
    data = path.read_bytes()
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"{path} does not hold an Ed25519 public key")
    return key
