"""Issued tenant keys: only their SHA-256 is stored; rotation keeps old keys for a grace period."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

import redis

from broker import keys
from broker.catalog import hash_key


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """Who an issued key belongs to, and until when it works (None = no end)."""

    tenant: str
    expires_at: float | None

    def valid(self, now: float | None = None) -> bool:
        """True while the key may be used."""
        return self.expires_at is None or (now or time.time()) < self.expires_at


def decode_grant(raw: str | bytes | None) -> KeyGrant | None:
    """A grant from its stored JSON."""
    if raw is None:
        return None
    data = json.loads(raw)
    return KeyGrant(str(data["tenant"]), data.get("expires_at"))


def _encode(grant: KeyGrant) -> str:
    return json.dumps({"tenant": grant.tenant, "expires_at": grant.expires_at})


def new_key(tenant: str) -> str:
    """A fresh random key; the tenant name in it only helps people tell keys apart."""
    return f"sk-{tenant}-{secrets.token_urlsafe(24)}"


def issue(client: redis.Redis, tenant: str) -> str:
    """Issue a key for a tenant; the key itself is returned once and never stored."""
    key = new_key(tenant)
    client.hset(keys.tenant_keys(), hash_key(key), _encode(KeyGrant(tenant, None)))
    return key


def rotate(client: redis.Redis, tenant: str, grace_s: int) -> tuple[str, int]:
    """Issue a new key; the tenant's current keys expire after the grace period."""
    expires = time.time() + grace_s
    registry = keys.tenant_keys()
    retired = 0
    for digest, raw in client.hgetall(registry).items():
        grant = decode_grant(raw)
        if grant and grant.tenant == tenant and grant.expires_at is None:
            client.hset(registry, digest, _encode(KeyGrant(tenant, expires)))
            retired += 1
    return issue(client, tenant), retired


def grants(client: redis.Redis) -> dict[str, KeyGrant]:
    """Every issued key hash and its grant (for listing; workers look keys up by hash)."""
    found = {}
    for digest, raw in client.hgetall(keys.tenant_keys()).items():
        grant = decode_grant(raw)
        if grant is not None:
            found[digest.decode() if isinstance(digest, bytes) else str(digest)] = grant
    return found


def revoke(client: redis.Redis, tenant: str) -> int:
    """Remove every issued key of a tenant at once."""
    doomed = [digest for digest, grant in grants(client).items() if grant.tenant == tenant]
    if doomed:
        client.hdel(keys.tenant_keys(), *doomed)
    return len(doomed)
