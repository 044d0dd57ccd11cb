"""The API key token format and its hashing.

A token is `hp_<prefix>_<secret>`: the prefix (public, shown in Settings and in the activity log)
finds the row, and only the SHA-256 of the whole token is stored. The secret has 256 bits of
entropy, so a fast hash is enough (nothing to brute-force) and lookups stay cheap.
"""
import hashlib
import hmac
import secrets

TOKEN_START = "hp_"


def token_new() -> tuple[str, str]:
    """A fresh (prefix, token)."""
    prefix = secrets.token_hex(6)
    return prefix, f"{TOKEN_START}{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_prefix(token: str) -> str | None:
    if not token.startswith(TOKEN_START):
        return None
    prefix, sep, secret = token[len(TOKEN_START):].partition("_")
    if not sep or not prefix or not secret or len(prefix) > 16:
        return None
    return prefix


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash)
