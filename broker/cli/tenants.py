"""`aibroker tenants`: issue, rotate, list and revoke tenant API keys."""

from __future__ import annotations

import argparse
import time

import redis
from rich.console import Console
from rich.table import Table

from broker import tenant_keys
from broker.catalog import load_catalog


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `tenants` command."""
    parser = subparsers.add_parser("tenants", help="issue and rotate tenant API keys")
    actions = parser.add_subparsers(dest="action", required=True)
    for name, help_text in (("add", "issue a first key for a tenant (printed once)"),
                            ("rotate-key", "issue a new key; old ones work for the grace period"),
                            ("revoke", "remove every issued key of a tenant now")):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("tenant")
        action.set_defaults(func=run_command)
    listing = actions.add_parser("list", help="issued keys (hash prefixes only)")
    listing.set_defaults(func=run_command, tenant=None)


def run_command(args: argparse.Namespace) -> int:
    """Carry out one tenants action."""
    catalog = load_catalog()
    client = redis.Redis.from_url(catalog.broker.redis_url, decode_responses=True)
    console = Console()
    if args.tenant is not None and args.tenant not in catalog.tenants:
        console.print(f"[yellow]note:[/yellow] {args.tenant!r} has no entry in the catalog; "
                      "its jobs are rejected until one is added (models, limits, budgets)")
    if args.action == "add":
        print(tenant_keys.issue(client, args.tenant))
    elif args.action == "rotate-key":
        key, retired = tenant_keys.rotate(client, args.tenant, catalog.broker.key_rotation_grace_s)
        print(key)
        console.print(f"[dim]{retired} older key(s) keep working for "
                      f"{catalog.broker.key_rotation_grace_s} s[/dim]", highlight=False)
    elif args.action == "revoke":
        console.print(f"revoked {tenant_keys.revoke(client, args.tenant)} key(s)")
    else:
        table = Table(title="Issued tenant keys")
        for column in ("tenant", "key sha256", "expires"):
            table.add_column(column)
        for digest, grant in sorted(tenant_keys.grants(client).items(),
                                    key=lambda item: item[1].tenant):
            expires = "-" if grant.expires_at is None else time.strftime(
                "%Y-%m-%d %H:%M:%S UTC", time.gmtime(grant.expires_at))
            table.add_row(grant.tenant, digest[:16] + "…", expires)
        console.print(table)
    return 0
