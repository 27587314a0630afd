"""Sealing the customer's storage keys before the task store keeps them: envelope encryption.

Each sealed value has a data key of its own (AES-256-GCM) and belongs to one task (its
context). In AWS, KMS makes the data key and keeps it sealed (CLOUDREC_KMS_KEY_ID) under the
encryption context {"cloudrec-task": <TaskId>}: a recorder's credentials let KMS open only its
own task's values (chalicelib/recorder_access.py), whatever else reads the table. Locally, a key
of the stack's (CLOUDREC_SEAL_KEY, base64) seals the data key instead, through a key derived for
the task; a recorder is given only its task's derived key (`LocalSealer.for_task`). Without
either, values are kept as they are (tests, and tasks stored before sealing).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
from typing import Any, Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "sealed:1:"
_AAD = b"cloudrec storage keys"
CONTEXT_KEY = "cloudrec-task"  # the KMS encryption context's key (IAM: kms:EncryptionContext:cloudrec-task)


class SealError(ValueError):
    """A sealed value that cannot be opened (another key, or damaged)."""


class Sealer(Protocol):
    """Seals and opens values of one task (`context`: its TaskId)."""

    def seal(self, plaintext: str, context: str) -> str: ...

    def open(self, sealed: str, context: str) -> str: ...


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


def _task_key(key: bytes, context: str) -> bytes:
    return hmac.new(key, b"cloudrec task key\0" + context.encode(), hashlib.sha256).digest()


class LocalSealer:
    """Data keys sealed by a key of the local stack's, through a key derived for each task
    (values sealed before tasks had keys of their own, without "t", open with the stack's key).
    `for_task` gives a recorder its own task's key and nothing else."""

    def __init__(self, key: bytes, task: str = "") -> None:
        if len(key) != 32:
            raise ValueError("the sealing key must be 32 bytes (base64 in CLOUDREC_SEAL_KEY)")
        self._key = key
        self._task = task  # set: `key` is already that task's derived key, and opens only its values

    def for_task(self, context: str) -> LocalSealer:
        return self if self._task else LocalSealer(_task_key(self._key, context), context)

    def key(self) -> str:
        return _b64(self._key)

    def _key_for(self, context: str) -> bytes:
        if self._task and context != self._task:
            raise SealError("this key opens only its own task's values")
        return self._key if self._task else _task_key(self._key, context)

    def seal(self, plaintext: str, context: str) -> str:
        data_key = AESGCM.generate_key(256)
        return _sealed({"k": _encrypt(self._key_for(context), data_key), "t": 1,
                        **_encrypt(data_key, plaintext.encode())})

    def open(self, sealed: str, context: str) -> str:
        parts = _parts(sealed)
        if "k" not in parts:
            raise SealError("sealed by another kind of key (KMS)")
        if "t" in parts:
            kek = self._key_for(context)
        elif self._task:
            raise SealError("sealed with the stack's key, which this process does not hold")
        else:
            kek = self._key
        return _decrypt(_decrypt(kek, parts["k"]), parts).decode()


class KmsSealer:
    """Data keys made and sealed by KMS. An opened data key is kept per process (a recorder
    reads its task every second), so KMS is asked once per task and process."""

    def __init__(self, kms: Any, key_id: str) -> None:
        self._kms = kms
        self._key_id = key_id

    def seal(self, plaintext: str, context: str) -> str:
        made = self._kms.generate_data_key(KeyId=self._key_id, KeySpec="AES_256",
                                           EncryptionContext={CONTEXT_KEY: context})
        return _sealed({"kms": _b64(made["CiphertextBlob"]), "t": 1, **_encrypt(made["Plaintext"], plaintext.encode())})

    def open(self, sealed: str, context: str) -> str:
        parts = _parts(sealed)
        if "kms" not in parts:
            raise SealError("sealed by another kind of key (a local one)")
        return _decrypt(self._data_key(parts["kms"], context if "t" in parts else ""), parts).decode()

    @functools.lru_cache(maxsize=256)  # noqa: B019 (one sealer per process, as long-lived as the cache)
    def _data_key(self, blob: str, context: str) -> bytes:
        try:
            plaintext: bytes = self._kms.decrypt(CiphertextBlob=base64.b64decode(blob),
                                                 **({"EncryptionContext": {CONTEXT_KEY: context}} if context else {})
                                                 )["Plaintext"]
        except Exception as exc:  # botocore: access denied, another key, a key disabled
            raise SealError("KMS would not open the data key") from exc
        return plaintext


class NoSealer:
    """Keeps values as they are (no key configured)."""

    def seal(self, plaintext: str, context: str) -> str:
        return plaintext

    def open(self, sealed: str, context: str) -> str:
        raise SealError("a sealed value, and no sealing key configured")


def sealer_for(kms_key_id: str, local_key: str, kms: Any = None, task: str = "") -> Sealer:
    """KMS when a key id is configured, else the local key (`task`: it is that task's derived
    key, as a recorder is given), else none."""
    if kms_key_id:
        return KmsSealer(kms, kms_key_id)
    if local_key:
        return LocalSealer(base64.b64decode(local_key), task)
    return NoSealer()
