"""The texts a job sends upstream, read or rewritten in place: what content guards look at."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Any

from broker.catalog import GuardMode
from broker.errors import PolicyRejection
from broker.schemas import ChatMessage, JobBody
from policies.guards.base import PolicyContext, Verdict

TextFn = Callable[[str], str]


def body_texts(body: JobBody, roles: Collection[str] | None = None) -> Iterator[str]:
    """Every text a job sends upstream (messages of the given roles, or all; input strings)."""
    if body.messages is None:
        yield from [body.input] if isinstance(body.input, str) else body.input or ()
        return
    for message in body.messages:
        if roles is not None and message.role not in roles:
            continue
        if isinstance(message.content, str):
            yield message.content
        elif message.content is not None:
            yield from (part["text"] for part in message.content if _is_text_part(part))
        for call in message.tool_calls or ():
            arguments = (call.get("function") or {}).get("arguments")
            if isinstance(arguments, str):
                yield arguments


def map_body_texts(body: JobBody, fn: TextFn) -> JobBody | None:
    """The body with fn applied to every text `body_texts` yields; None when nothing changed."""
    if body.messages is None:
        if isinstance(body.input, str):
            new_input: str | list[str] = fn(body.input)
        else:
            new_input = [fn(text) for text in body.input or ()]
        return None if new_input == body.input else body.model_copy(update={"input": new_input})
    messages = [_map_message(message, fn) for message in body.messages]
    if all(new is old for new, old in zip(messages, body.messages, strict=True)):
        return None
    return body.model_copy(update={"messages": messages})


def _is_text_part(part: dict[str, Any]) -> bool:
    return part.get("type") == "text" and isinstance(part.get("text"), str)


def _map_message(message: ChatMessage, fn: TextFn) -> ChatMessage:
    update: dict[str, Any] = {}
    content = message.content
    if isinstance(content, str):
        new = fn(content)
        if new != content:
            update["content"] = new
    elif content is not None:
        parts = [{**part, "text": fn(part["text"])} if _is_text_part(part) else part
                 for part in content]
        if parts != content:
            update["content"] = parts
    if message.tool_calls:
        calls = [_map_call(call, fn) for call in message.tool_calls]
        if calls != message.tool_calls:
            update["tool_calls"] = calls
    return message.model_copy(update=update) if update else message


def _map_call(call: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    return {**call, "function": {**function, "arguments": fn(function["arguments"])}}



def scan_or_scrub(ctx: PolicyContext, mode: GuardMode, scan: Callable[[str], object],
                  scrub: TextFn) -> None:
    """Redact mode rewrites every text with `scrub`; other modes only `scan` them."""
    if mode == "redact":
        new_body = map_body_texts(ctx.body, scrub)
        if new_body is not None:
            ctx.replace_body(new_body)
        return
    for text in body_texts(ctx.body):
        scan(text)


def conclude(ctx: PolicyContext, mode: GuardMode, rejection: PolicyRejection,
             warning: str) -> Verdict:
    """The verdict once something was found: block refuses, log warns, redact allows."""
    if mode == "block":
        return Verdict.refuse(rejection)
    if mode == "log":
        ctx.warnings.append(warning)
    return Verdict.allow()
