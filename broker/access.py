"""What one tenant may see: its own jobs and usage; anyone else's job answers "not found"."""

from __future__ import annotations

import hashlib
from datetime import date

from broker import jobstore as js
from broker import keys
from broker.client import Client
from broker.errors import AuthenticationFailed, JobNotFound
from broker.ledger import Dimension, UsageRow, read_usage
from broker.schemas import JobResult, JobStatus
from broker.tenant_keys import decode_grant


def tenant_of_key(client: Client, api_key: str) -> str | None:
    """The tenant a key belongs to: a static catalog key, or a valid issued one."""
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    found = client.catalog.find_tenant(digest)
    if found is not None:
        return found[0]
    grant = decode_grant(client.redis.hget(keys.tenant_keys(), digest))
    return grant.tenant if grant is not None and grant.valid() else None


class TenantView:
    """A client scoped to the tenant of one API key; it offers no way out of that tenant."""

    # Slots keep the unrestricted client off every public attribute and out of __dict__.
    __slots__ = ("_client", "_tenant")

    def __init__(self, client: Client, api_key: str) -> None:
        tenant = tenant_of_key(client, api_key)
        if tenant is None:
            raise AuthenticationFailed("the API key matches no tenant")
        self._client = client
        self._tenant = tenant

    @property
    def tenant(self) -> str:
        """The tenant this view is scoped to."""
        return self._tenant

    def __repr__(self) -> str:
        return f"TenantView(tenant={self._tenant!r})"

    def _owner(self, job_id: str) -> str | None:
        result = self._client.peek(job_id)
        if result is not None:
            return result.tenant
        tenant, submitted_with = self._client.redis.hmget(js.job_key(job_id),
                                                         [js.F_TENANT, js.F_KEY])
        if tenant:
            return str(tenant)
        if submitted_with:  # not admitted yet: whose key submitted it
            found = self._client.catalog.find_tenant(str(submitted_with))
            if found is not None:
                return found[0]
            grant = decode_grant(self._client.redis.hget(keys.tenant_keys(), submitted_with))
            return grant.tenant if grant else None
        return None

    def _check(self, job_id: str) -> None:
        # Someone else's job and a job that does not exist answer the same way.
        if self._owner(job_id) != self._tenant:
            raise JobNotFound(f"no job {job_id}")

    def result(self, job_id: str) -> JobResult | None:
        """The job's result if it has ended (None while it runs)."""
        self._check(job_id)
        return self._client.peek(job_id)

    def status(self, job_id: str) -> JobStatus:
        """Where the job is now."""
        self._check(job_id)
        return self._client.status(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> JobResult:
        """Block until the job ends."""
        self._check(job_id)
        return self._client.wait(job_id, timeout)

    def cancel(self, job_id: str) -> bool:
        """Cancel one of the tenant's own jobs."""
        self._check(job_id)
        return self._client.cancel(job_id)

    def usage(self, *, since: date | None = None, until: date | None = None,
              by: tuple[Dimension, ...] = ("model",)) -> list[UsageRow]:
        """The tenant's own usage, never anyone else's."""
        return read_usage(self._client.redis, since=since, until=until, by=by,
                          tenant=self._tenant)
