"""`darkroom keys`: create, list, top up and revoke API keys, and give a key a new webhook
secret.

Amounts are read as exact decimals (money.py), never as floats, and a bad one is one line on
stderr and exit 2, like any usage error. `--credits N`, from when a key counted tasks, is kept
as a hidden, deprecated spelling of `--balance N`: a credit was one task, and the migration
made credits N a balance of N.

A key's webhook secret (the `whsec_` secret its tasks' webhooks are signed with) is shown once:
on stderr when the key is made (stdout stays the key alone, for scripts), and on stdout by
`keys webhook-secret`, which replaces it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from darkroom.cli.common import ConfigOption, migrated_app
from darkroom.keys import NO_LIMITS, ApiKey, Limits, TopUpRefused
from darkroom.keys.store import UNSET, KeyStore
from darkroom.money import AmountError, json_number, parse_amount
from darkroom.webhooks.target import callback_problem

keys = typer.Typer(
    help="Create, list, top up and revoke API keys; rotate their webhook secrets.",
    no_args_is_help=True,
)

T = TypeVar("T")

KeyArgument = Annotated[str, typer.Argument(help="The key's id or prefix as listed, or the key")]


def _amount(text: str, what: str, *, positive: bool = False) -> Decimal:
    """The amount an option gives, or exit 2 with one line that says why it is not one."""
    try:
        amount = parse_amount(text)
    except AmountError as exc:
        raise _usage_error(f"{what}: {exc}") from None
    if amount < 0 or (positive and amount == 0):
        raise _usage_error(f"{what}: {text!r} must be {'positive' if positive else '0 or more'}")
    return amount


def _usage_error(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _no_live_key(key: str) -> typer.Exit:
    typer.echo(f"error: no live key matches {key!r}", err=True)
    return typer.Exit(1)


def _check_callback_url(url: str) -> None:
    """Exit 2 with the target's problem (webhooks/target.py) if `url` cannot be one."""
    if problem := callback_problem(url):
        raise _usage_error(f"--callback-url: {problem.removeprefix('callback_url ')}")


def _on_keys(config: Path | None, work: Callable[[KeyStore], Awaitable[T]]) -> T:
    """What `work` returns, run on the key store of the configured app (schema migrated)."""

    async def run() -> T:
        async with migrated_app(config) as app:
            return await work(app.keys)

    return asyncio.run(run())


# A key's share and limits (keys/limits.py, tasks/fair.py); unset: the server's defaults.
Rate = Annotated[float | None, typer.Option(help="Requests per second it may make", min=0.001)]
MaxWaiting = Annotated[int | None, typer.Option(help="Tasks it may have waiting", min=0)]
MaxRunning = Annotated[int | None, typer.Option(help="Tasks it may have running", min=1)]
DailySpend = Annotated[str | None, typer.Option(help="Money it may spend in 24 hours")]
Weight = Annotated[float | None, typer.Option(help="Its share of the workers (1: even)", min=0.001)]
Priority = Annotated[int | None, typer.Option(help="Higher priorities are served first")]


def _limits(
    rate: float | None, waiting: int | None, running: int | None, spend: str | None
) -> Limits:
    daily = None if spend is None else _amount(spend, "--daily-spend")
    return Limits(rate=rate, max_waiting=waiting, max_running=running, daily_spend=daily)


@keys.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key")] = "default",
    models: Annotated[str | None, typer.Option(help="Comma-separated models it may use")] = None,
    balance: Annotated[
        str | None, typer.Option(help="Money it may spend (default: unmetered, no balance)")
    ] = None,
    credit_limit: Annotated[str, typer.Option(help="How far below zero its balance may go")] = "0",
    credits: Annotated[
        str | None, typer.Option(hidden=True, help="Deprecated: the same as --balance")
    ] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="An operator's key: it may use the console")
    ] = False,
    rate: Rate = None,
    max_waiting: MaxWaiting = None,
    max_running: MaxRunning = None,
    daily_spend: DailySpend = None,
    weight: Weight = None,
    priority: Priority = None,
    callback_url: Annotated[
        str | None,
        typer.Option(help="Where its tasks' ends are posted when a create names no callback_url"),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create a key and print it alone on stdout (it is never shown again); its webhook
    secret goes to stderr, once too."""
    limits = _limits(rate, max_waiting, max_running, daily_spend)
    if balance is not None and credits is not None:
        raise _usage_error("give --balance or its old name --credits, not both")
    money = balance if balance is not None else credits
    start = None if money is None else _amount(money, "--balance")
    limit = _amount(credit_limit, "--credit-limit")
    if start is None and limit:
        raise _usage_error("--credit-limit needs --balance: an unmetered key has no balance")
    allowed = [m.strip() for m in models.split(",") if m.strip()] if models else None
    if callback_url is not None:
        _check_callback_url(callback_url)

    async def create(store: KeyStore) -> tuple[str, str | None]:
        raw, key = await store.create(
            name,
            models=allowed,
            balance=start,
            credit_limit=limit,
            admin=admin,
            weight=1.0 if weight is None else weight,
            priority=priority or 0,
            limits=limits,
            callback_url=callback_url,
        )
        return raw, await store.webhook_secret(key.id)

    raw, secret = _on_keys(config, create)
    typer.echo(f"webhook secret: {secret}", err=True)
    typer.echo(raw)


@keys.command("list")
def keys_list(config: ConfigOption = None) -> None:
    """List keys, one JSON object a line (never the keys themselves: they are stored hashed);
    `balance` is null for an unmetered key."""
    for key in _on_keys(config, lambda store: store.list()):
        typer.echo(json.dumps(_listed(key)))


def _listed(key: ApiKey) -> dict[str, Any]:
    listed = vars(key).copy()
    listed["balance"] = None if key.balance is None else json_number(key.balance)
    listed["credit_limit"] = json_number(key.credit_limit)
    limits = listed.pop("limits")
    listed.update(vars(limits))
    if limits.daily_spend is not None:
        listed["daily_spend"] = json_number(limits.daily_spend)
    return listed


@keys.command("update")
def keys_update(
    key: KeyArgument,
    rate: Rate = None,
    max_waiting: MaxWaiting = None,
    max_running: MaxRunning = None,
    daily_spend: DailySpend = None,
    weight: Weight = None,
    priority: Priority = None,
    clear_limits: Annotated[
        bool, typer.Option("--clear-limits", help="Back to the server's default limits first")
    ] = False,
    callback_url: Annotated[
        str | None,
        typer.Option(help="Its default webhook URL; an empty string removes it"),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Change a key's share, limits and default webhook URL (those given; the others stay);
    prints the key as `keys list` does. Running servers see the change within
    DARKROOM_KEY_CACHE_SECONDS."""
    given = _limits(rate, max_waiting, max_running, daily_spend)
    if callback_url:  # empty: remove it
        _check_callback_url(callback_url)

    async def update(store: KeyStore) -> ApiKey | None:
        found = await store.find(key)
        if found is None:
            return None
        base = NO_LIMITS if clear_limits else found.limits
        changes = {name: value for name, value in vars(given).items() if value is not None}
        return await store.set_limits(
            key,
            limits=dataclasses.replace(base, **changes),
            weight=found.weight if weight is None else weight,
            priority=found.priority if priority is None else priority,
            callback_url=UNSET if callback_url is None else (callback_url or None),
        )

    updated = _on_keys(config, update)
    if updated is None:
        raise _no_live_key(key)
    typer.echo(json.dumps(_listed(updated)))


# "-5" is an amount to refuse in words, not an unknown option.
@keys.command("topup", context_settings={"ignore_unknown_options": True})
def keys_topup(
    key: KeyArgument,
    amount: Annotated[str, typer.Argument(help="The money to add, a positive number")],
    config: ConfigOption = None,
) -> None:
    """Add money to a metered key's balance; prints the new balance."""
    added = _amount(amount, "AMOUNT", positive=True)
    try:
        balance = _on_keys(config, lambda store: store.topup(key, added))
    except TopUpRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"balance": json_number(balance)}))


@keys.command("revoke")
def keys_revoke(
    key: KeyArgument,
    config: ConfigOption = None,
) -> None:
    """Revoke a key: its requests are refused from now on."""
    if not _on_keys(config, lambda store: store.revoke(key)):
        raise _no_live_key(key)
    typer.echo("revoked", err=True)


@keys.command("webhook-secret")
def keys_webhook_secret(
    key: KeyArgument,
    config: ConfigOption = None,
) -> None:
    """Give a key a new webhook secret and print it (the old one signs nothing from now on)."""
    secret = _on_keys(config, lambda store: store.rotate_webhook_secret(key))
    if secret is None:
        raise _no_live_key(key)
    typer.echo(secret)
