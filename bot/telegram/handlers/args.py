"""Argument parsing shared by handlers: a bad argument is answered with a translated error, nothing else."""

from __future__ import annotations

from bot.telegram.context import Request
from trader.config.pairs import normalize_pair


async def pairs(request: Request, texts: list[str]) -> list[str] | None:
    """Canonical pairs, or None after telling the user which text is not a pair."""
    found: list[str] = []
    for text in texts:
        try:
            found.append(normalize_pair(text, request.deps.settings.stake_currency))
        except ValueError:
            await request.reply(request.t("args.bad_pair", text=text[:40]))
            return None
    return list(dict.fromkeys(found))


async def whole_number(request: Request, text: str, low: int, high: int) -> int | None:
    if not text.isdigit() or len(text) > 6 or not low <= int(text) <= high:
        await request.reply(request.t("args.bad_number", text=text[:40], low=low, high=high))
        return None
    return int(text)


async def usage(request: Request) -> None:
    t = request.t
    await request.reply(t("args.usage", usage=t(f"usage.{request.command}")))
