"""Commands that change what the engine does. Everything risky returns a ``confirm.Ask``: the registry posts the
Confirm / Cancel question and only the Confirm press acts (confirm.py)."""

from __future__ import annotations

from bot.i18n import Translator
from bot.telegram import confirm
from bot.telegram import formatting as fmt
from bot.telegram.context import Caller, Request
from bot.telegram.handlers import args
from bot.telegram.registry import Command

MAX_LEVERAGE_TEXT = 125  # Binance's ceiling; the service applies the configured maximum and the brackets


async def start_trading(request: Request) -> confirm.Ask | None:
    if request.args:
        await args.usage(request)
        return None
    service = request.service
    await service.check_start()  # a refusal now, not after the Confirm press

    async def run(caller: Caller, t: Translator) -> str:
        return t("control.started") + "\n\n" + fmt.status(t, await service.start(caller.actor))

    return confirm.Ask(request.t("control.confirm_start"), "start", {}, run)


async def stop(request: Request) -> confirm.Ask | None:
    if request.args:
        await args.usage(request)
        return None
    service = request.service
    await service.check_stop()  # a refusal now, not after the Confirm press

    async def run(caller: Caller, t: Translator) -> str:
        return t("control.stopped") + "\n\n" + fmt.status(t, await service.stop(caller.actor))

    return confirm.Ask(request.t("control.confirm_stop"), "stop", {}, run)


async def pause(request: Request) -> None:
    view = await request.service.pause(request.caller.actor)
    await request.reply(request.t("control.paused") + "\n\n" + fmt.status(request.t, view))


async def resume(request: Request) -> None:
    view = await request.service.resume(request.caller.actor)
    await request.reply(request.t("control.resumed") + "\n\n" + fmt.status(request.t, view))


async def flatten(request: Request) -> confirm.Ask | None:
    if request.args:
        await args.usage(request)
        return None
    service = request.service
    open_now = await service.positions()
    pairs = ", ".join(f"{fmt.short_pair(p.pair)} {request.t(f'side.{p.side}')}" for p in open_now) or "-"
    question = request.t("flatten.confirm", count=len(open_now), pairs=pairs)

    async def run(caller: Caller, t: Translator) -> str:
        report = await service.flatten(caller.actor)
        return fmt.flatten(t, report, caller.settings.timezone)

    return confirm.Ask(question, "flatten", {}, run)


async def leverage(request: Request) -> confirm.Ask | None:
    service = request.service
    current = await service.leverage_now()
    if not request.args:
        await request.reply(request.t("leverage.current", leverage=current,
                                      maximum=request.deps.settings.max_leverage))
        return None
    if len(request.args) != 1:
        await args.usage(request)
        return None
    wanted = await args.whole_number(request, request.args[0].removesuffix("x"), 1, MAX_LEVERAGE_TEXT)
    if wanted is None:
        return None
    if wanted == current:
        await request.reply(request.t("leverage.unchanged", leverage=current))
        return None
    await service.check_leverage(wanted)  # a refusal now, not after the Confirm press
    pairs = ", ".join(fmt.short_pair(p) for p in (await service.whitelist()).pairs)

    async def run(caller: Caller, t: Translator) -> str:
        return fmt.leverage_change(t, await service.set_leverage(caller.actor, wanted))

    return confirm.Ask(request.t("leverage.confirm", old=current, new=wanted, pairs=pairs), "set_leverage",
                      {"leverage": wanted}, run, state=service.leverage_now)


async def whitelist(request: Request) -> confirm.Ask | None:
    service = request.service
    if not request.args:
        await request.reply(fmt.whitelist(request.t, await service.whitelist()))
        return None
    verb, texts = request.args[0].lower(), request.args[1:]
    if verb not in ("add", "remove") or not texts:
        await args.usage(request)
        return None
    pairs = await args.pairs(request, texts)
    if pairs is None:
        return None
    if verb == "add":  # a refusal now, not after the Confirm press (the change checks again)
        await service.check_whitelist_add(pairs)
    else:
        await service.check_whitelist_remove(pairs)
    names = ", ".join(fmt.short_pair(p) for p in pairs)

    async def run(caller: Caller, t: Translator) -> str:
        if verb == "add":
            view = await service.whitelist_add(caller.actor, pairs)
        else:
            view = await service.whitelist_remove(caller.actor, pairs)
        done = t("whitelist.added" if verb == "add" else "whitelist.removed", pairs=", ".join(fmt.short_pair(p) for p in view.changed))
        return done + "\n" + fmt.whitelist(t, view)

    return confirm.Ask(request.t(f"whitelist.confirm_{verb}", pairs=names), f"whitelist_{verb}",
                      {"pairs": pairs}, run, state=_pairs_of(service))


async def _force_enter(request: Request, side: str) -> confirm.Ask | None:
    if len(request.args) != 1:
        await args.usage(request)
        return None
    found = await args.pairs(request, request.args)
    if found is None:
        return None
    (pair,) = found
    service = request.service
    await service.check_force_enter(pair, side)  # a refusal now, not after the Confirm press

    async def run(caller: Caller, t: Translator) -> str:
        trade_id = await service.force_enter(caller.actor, pair, side)
        return t("force.entered", pair=fmt.short_pair(pair), side=t(f"side.{side}"), id=trade_id)

    return confirm.Ask(request.t("force.confirm_enter", pair=fmt.short_pair(pair), side=request.t(f"side.{side}"),
                                         leverage=await service.leverage_now()),
                      "force_enter", {"pair": pair, "side": side}, run)


async def force_long(request: Request) -> confirm.Ask | None:
    return await _force_enter(request, "long")


async def force_short(request: Request) -> confirm.Ask | None:
    return await _force_enter(request, "short")


async def force_exit(request: Request) -> confirm.Ask | None:
    if len(request.args) != 1:
        await args.usage(request)
        return None
    text = request.args[0]
    if text.isdigit() and len(text) <= 12:
        target, shown = text, f"#{text}"
    else:
        found = await args.pairs(request, [text])
        if found is None:
            return None
        target = shown = found[0]
        shown = fmt.short_pair(shown)
    service = request.service
    await service.check_force_exit(target)  # a refusal now, not after the Confirm press

    async def run(caller: Caller, t: Translator) -> str:
        closed = await service.force_exit(caller.actor, target)
        return t("force.exited", target=shown, ids=", ".join(f"#{i}" for i in closed))

    return confirm.Ask(request.t("force.confirm_exit", target=shown), "force_exit", {"target": target}, run)


async def strategy(request: Request) -> confirm.Ask | None:
    service = request.service
    view = await service.strategy_now()
    t = request.t
    if not request.args:
        choices = ", ".join(f"{c} ✓" if c == view.current else c for c in view.choices)
        await request.reply(t("strategy.current", current=view.current, configured=view.configured,
                              choices=choices))
        return None
    if len(request.args) != 1:
        await args.usage(request)
        return None
    wanted = request.args[0].strip().lower()
    if wanted not in view.choices:
        await request.reply(t("strategy.unknown", name=request.args[0][:40], choices=", ".join(view.choices)))
        return None
    if wanted == view.current:
        await request.reply(t("strategy.unchanged", strategy=wanted))
        return None
    await service.check_strategy(wanted)  # a refusal now, not after the Confirm press

    async def run(caller: Caller, t: Translator) -> str:
        change = await service.set_strategy(caller.actor, wanted)
        return t("strategy.changed_restarted" if change.restarted else "strategy.changed", old=change.old,
                 new=change.new)

    question = t("strategy.confirm_running" if view.running else "strategy.confirm", old=view.current, new=wanted)
    return confirm.Ask(question, "set_strategy", {"strategy": wanted}, run, state=_strategy_of(service))


COMMANDS = [
    Command("start_trading", start_trading, "trader", "confirm", "help.start_trading", group="control"),
    Command("stop", stop, "trader", "confirm", "help.stop", group="control"),
    Command("pause", pause, "trader", "write", "help.pause", group="control"),
    Command("resume", resume, "trader", "write", "help.resume", group="control"),
    Command("flatten", flatten, "trader", "confirm", "help.flatten", group="control"),
    Command("leverage", leverage, "trader", "confirm", "help.leverage", group="control"),
    Command("whitelist", whitelist, "trader", "confirm", "help.whitelist", group="control"),
    Command("forcelong", force_long, "trader", "confirm", "help.forcelong", group="control"),
    Command("forceshort", force_short, "trader", "confirm", "help.forceshort", group="control"),
    Command("forceexit", force_exit, "trader", "confirm", "help.forceexit", group="control"),
    Command("strategy", strategy, "trader", "confirm", "help.strategy", group="control"),
]


def _pairs_of(service: object) -> object:
    async def read() -> tuple[str, ...]:
        return (await service.whitelist()).pairs  # type: ignore[attr-defined]
    return read


def _strategy_of(service: object) -> object:
    async def read() -> str:
        return (await service.strategy_now()).current  # type: ignore[attr-defined]
    return read
