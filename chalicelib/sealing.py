"""Sealing the customer's storage keys before the task store keeps them: envelope encryption.

Each sealed value has a data key of its own (AES-256-GCM). In AWS, KMS makes the data key and
keeps it sealed (CLOUDREC_KMS_KEY_ID): only a principal that KMS lets decrypt can read a task's
keys, whatever else reads the table. Locally, a key of the stack's (CLOUDREC_SEAL_KEY, base64)
seals the data key instead. Without either, values are kept as they are (tests, and tasks
stored before sealing).
"""

from __future__ import annotations

import base64
import functools
import json
import os
from typing import Any, Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "sealed:1:"
_AAD = b"cloudrec storage keys"


class SealError(ValueError):
    """A sealed value that cannot be opened (another key, or damaged)."""


class Sealer(Protocol):
    def seal(self, plaintext: str) -> str: ...

    def open(self, sealed: str) -> str: ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _encrypt(key: bytes, plaintext: bytes) -> dict[str, str]:
    nonce = os.urandom(12)
    return {"n": _b64(nonce), "c": _b64(AESGCM(key).encrypt(nonce, plaintext, _AAD))}


def _decrypt(key: bytes, box: dict[str, Any]) -> bytes:
    try:
        return AESGCM(key).decrypt(base64.b64decode(box["n"]), base64.b64decode(box["c"]), _AAD)
    except Exception as exc:  # InvalidTag, bad base64, missing fields
        raise SealError("the sealed value cannot be opened with this key") from exc


def _parts(sealed: str) -> dict[str, Any]:
    if not sealed.startswith(PREFIX):
        raise SealError("not a sealed value")
    try:
        parts: dict[str, Any] = json.loads(base64.b64decode(sealed[len(PREFIX):]))
    except ValueError as exc:
        raise SealError("a damaged sealed value") from exc
    return parts


def _sealed(parts: dict[str, Any]) -> str:
    return PREFIX + _b64(json.dumps(parts, separators=(",", ":")).encode())


class LocalSealer:
    """Data keys sealed by a key of the local stack's."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the sealing key must be 32 bytes (base64 in CLOUDREC_SEAL_KEY)")
        self._key = key

    def seal(self, plaintext: str) -> str:
        data_key = AESGCM.generate_key(256)
        return _sealed({"k": _encrypt(self._key, data_key), **_encrypt(data_key, plaintext.encode())})

    def open(self, sealed: str) -> str:
        parts = _parts(sealed)
        if "k" not in parts:
            raise SealError("sealed by another kind of key (KMS)")
        return _decrypt(_decrypt(self._key, parts["k"]), parts).decode()


class KmsSealer:
    """Data keys made and sealed by KMS. An opened data key is kept per process (a recorder
    reads its task every second), so KMS is asked once per task and process."""

    def __init__(self, kms: Any, key_id: str) -> None:
        self._kms = kms
        self._key_id = key_id

    def seal(self, plaintext: str) -> str:
        made = self._kms.generate_data_key(KeyId=self._key_id, KeySpec="AES_256")
        return _sealed({"kms": _b64(made["CiphertextBlob"]), **_encrypt(made["Plaintext"], plaintext.encode())})

    def open(self, sealed: str) -> str:
        parts = _parts(sealed)
        if "kms" not in parts:
            raise SealError("sealed by another kind of key (a local one)")
        return _decrypt(self._data_key(parts["kms"]), parts).decode()

    @functools.lru_cache(maxsize=256)  # noqa: B019 (one sealer per process, as long-lived as the cache)
    def _data_key(self, blob: str) -> bytes:
        try:
            plaintext: bytes = self._kms.decrypt(CiphertextBlob=base64.b64decode(blob))["Plaintext"]
        except Exception as exc:  # botocore: access denied, another key, a key disabled
            raise SealError("KMS would not open the data key") from exc
        return plaintext


class NoSealer:
    """Keeps values as they are (no key configured)."""

    def seal(self, plaintext: str) -> str:
        return plaintext

    def open(self, sealed: str) -> str:
        raise SealError("a sealed value, and no sealing key configured")


def open_value(sealer: Sealer, value: str) -> str:
    """A stored value, opened if it was sealed (tasks stored before sealing are plain)."""
    return sealer.open(value) if value.startswith(PREFIX) else value


def sealer_for(kms_key_id: str, local_key: str, kms: Any = None) -> Sealer:
    """KMS when a key id is configured, else the local key, else none."""
    if kms_key_id:
        return KmsSealer(kms, kms_key_id)
    if local_key:
        return LocalSealer(base64.b64decode(local_key))
    return NoSealer()
