"""Stored secrets: values (API keys) that node configs name instead of holding.

Only the Fernet ciphertext is stored. The key is derived (HKDF-SHA256) from
DATAMATE_SECRETS_KEY, or SECRET_KEY when that is empty, so web and workers that share the
setting share the key. A value goes in through `create_secret` / `update_secret` and comes
out only through `reveal`, which executors call for the node's owner; no API, admin page,
log line or error message shows it.
"""

from __future__ import annotations

import base64
import re

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import IntegrityError, transaction

from nodes.models import Secret

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
MAX_VALUE_LENGTH = 10_000


class SecretError(Exception):
    """Bad input, naming the field (`name`, `value`, `description`). Never holds the value."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class SecretNotFound(LookupError):
    pass


class SecretUnreadable(Exception):
    """The ciphertext does not open with the current key (the key setting changed)."""


def _fernet() -> Fernet:
    material = (settings.DATAMATE_SECRETS_KEY or settings.SECRET_KEY).encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"datamate secrets").derive(material)
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "cannot be decrypted: DATAMATE_SECRETS_KEY (or SECRET_KEY) changed since it was stored; set it again"
        ) from None


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name.strip()):
        raise SecretError("name", "use 1 to 100 letters, digits, _, . or -, starting with a letter or _")
    return name.strip()


def check_value(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise SecretError("value", "must be a non-empty string")
    if len(value) > MAX_VALUE_LENGTH:
        raise SecretError("value", f"must be at most {MAX_VALUE_LENGTH} characters")
    return value


def _store(secret: Secret, value: str | None) -> Secret:
    secret.name = check_name(secret.name)
    if value is not None:
        secret.ciphertext = encrypt(check_value(value))
    elif not secret.ciphertext:
        raise SecretError("value", "is required for a new secret")
    try:
        with transaction.atomic():
            secret.save()
    except IntegrityError:  # the unique (owner, name) constraint, also under a concurrent save
        raise SecretError("name", f"you already have a secret named {secret.name!r}") from None
    return secret


def create_secret(*, owner, name: str, value: str | None, description: str = "") -> Secret:
    return _store(Secret(owner=owner, name=name, description=description or ""), value)


def update_secret(
    secret: Secret, *, name: str | None = None, value: str | None = None, description: str | None = None
) -> Secret:
    """Change a secret; a `value` of None keeps the stored one. Also saves a new, unsaved
    Secret built by a form (then a value is required)."""
    if name is not None:
        secret.name = name
    if description is not None:
        secret.description = description
    return _store(secret, value)


def delete_secret(secret: Secret) -> None:
    secret.delete()


def reveal(owner_id: int, name: str) -> str:
    """The plain value of the owner's secret `name`: for executors only, never for a response."""
    secret = Secret.objects.filter(owner_id=owner_id, name=name).only("ciphertext").first()
    if secret is None:
        raise SecretNotFound(f"you have no secret named {name!r}")
    try:
        return decrypt(secret.ciphertext)
    except SecretUnreadable as error:
        raise SecretUnreadable(f"secret {name!r} {error}") from None
