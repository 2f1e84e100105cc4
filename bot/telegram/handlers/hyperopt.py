"""/hyperopt (admin): a bounded parameter optimisation from the phone, and applying what it found.

``/hyperopt [strategy] [pairs] [timeframe] [YYYYMMDD-YYYYMMDD | Nd] [epochs=N] [folds=N] [spaces=a,b] [loss=L]``
starts at once with defaults for whatever is left out (the configured strategy, the first whitelisted pairs, 15m,
the newest two weeks of stored candles, 30 epochs × 2 folds); the service bounds it (trader.jobs.hyperopt) and runs
it as the user's one heavy job in a worker process. Progress, throttling and the Stop button are the backtest's
(``backtest.ProgressView``); the end shows the out-of-sample figures and the best parameters with an Apply button.
Apply only asks: the change itself is a confirm.py question (single-use, re-checked on press: stale if someone
applied other parameters meanwhile), done by ``TradingService.apply_strategy_params`` (audited, kept in
RuntimeState, a running engine restarted).

Buttons carry only ``ho:<nonce>:x`` (Stop) or ``ho:<nonce>:a`` (Apply); what a nonce means lives in the bot's one
button store (buttons.py), bound to the user, chat and message it was posted on. Apply can be pressed again (it only
asks) for ``APPLY_TTL_S``; an expired Apply loses its button and the results stay.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Translator
from bot.telegram import confirm
from bot.telegram import formatting as fmt
from bot.telegram.buttons import Entry, Kind
from bot.telegram.context import BotDeps, Caller, Request, service_error_text
from bot.telegram.handlers import backtest as bt
from bot.telegram.registry import Command
from trader.jobs.hyperopt import LOSSES, MAX_EPOCHS, MAX_FOLDS, MAX_PAIRS, HyperoptAsk, HyperoptSummary
from trader.service.errors import ServiceError

if TYPE_CHECKING:
    from trader.jobs.hyperopt import HyperoptJobSpec
    from trader.jobs.runner import JobProgress

PREFIX = "ho"
KIND = Kind(PREFIX, "[xa]", "hyperopt_button", "hyperopt.expired")
_OPTION = re.compile(r"^(epochs|folds|spaces|loss)=(.{1,60})$")
STATE_KEY = "hyperopts"
APPLY_TTL_S = 3600.0  # results stay appliable for an hour; the confirmation itself still expires in 60 s


# -- arguments --------------------------------------------------------------------------------------------------------
def parse(tokens: list[str], quote: str = "USDT") -> HyperoptAsk:
    """``key=value`` options, then the backtest's positional arguments (told apart by shape). Raises
    ``backtest.BadArgument`` with a catalog key."""
    options: dict[str, Any] = {}
    rest: list[str] = []
    for token in tokens:
        match = _OPTION.match(token.lower())
        if match is None:
            if "=" in token:
                raise bt.BadArgument("hyperopt.bad_option", text=token[:40])
            rest.append(token)
            continue
        key, value = match.groups()
        if key in options:
            raise bt.BadArgument("hyperopt.bad_option", text=token[:40])
        if key in ("epochs", "folds"):
            limit = MAX_EPOCHS if key == "epochs" else MAX_FOLDS
            if not value.isdigit() or not 1 <= int(value) <= limit:
                raise bt.BadArgument(f"hyperopt.bad_{key}", text=value[:20], max=limit)
            options[key] = int(value)
        elif key == "loss":
            if value not in LOSSES:
                raise bt.BadArgument("hyperopt.bad_loss", text=value[:20], choices=", ".join(LOSSES))
            options[key] = value
        else:
            spaces = tuple(dict.fromkeys(s for s in value.split(",") if s))
            if not spaces:
                raise bt.BadArgument("hyperopt.bad_option", text=token[:40])
            options[key] = spaces  # which spaces exist is the strategy's business: the service checks
    try:
        draft = bt.parse(rest, quote)
    except bt.BadArgument as exc:  # the same shapes; this command's own wording and limits
        fields = {**exc.fields, "max": MAX_PAIRS} if exc.key.endswith("too_many_pairs") else exc.fields
        raise bt.BadArgument("hyperopt." + exc.key.split(".", 1)[1], **fields) from None
    if draft.pairs is not None and len(draft.pairs) > MAX_PAIRS:
        raise bt.BadArgument("hyperopt.too_many_pairs", count=len(draft.pairs), max=MAX_PAIRS)
    positional: dict[str, Any] = {"strategy": draft.strategy, "pairs": draft.pairs, "timerange": draft.timerange}
    if draft.timeframe is not None:
        positional["timeframe"] = draft.timeframe
    return HyperoptAsk(**positional, **options)


# -- buttons ------------------------------------------------------------------------------------------------------------
@dataclass
class ApplyParams:
    """An Apply button: the parameters it would ask to apply."""

    params: dict[str, Any]


@dataclass
class State:
    views: dict[str, HyperoptView] = field(default_factory=dict)  # job id → its message; keeps tasks alive


def state_of(deps: BotDeps) -> State:
    found = deps.extras.get(STATE_KEY)
    if found is None:
        found = deps.extras[STATE_KEY] = State()
    return found


# -- running ----------------------------------------------------------------------------------------------------------
class HyperoptView(bt.ProgressView):
    """The backtest's progress message (throttled edits, Stop button, latest state last), with hyperopt texts
    and the results with an Apply button at the end."""

    def __init__(self, request: Request):
        super().__init__(request, bt.Draft())
        self.spec: HyperoptJobSpec | None = None

    def keyboard(self) -> InlineKeyboardMarkup | None:
        if self.cancel_nonce is None:
            return None
        return InlineKeyboardMarkup([[InlineKeyboardButton(self.t("hyperopt.button.stop"),
                                                           callback_data=KIND.data(self.cancel_nonce, "x"))]])

    def head(self) -> str:
        spec = self.spec
        assert spec is not None
        return self.t("hyperopt.running", strategy=spec.strategy, pairs=", ".join(fmt.short_pair(p) for p in spec.pairs),
                      timeframe=spec.timeframe, timerange=spec.timerange, epochs=spec.epochs, folds=spec.folds,
                      spaces=", ".join(spec.spaces), loss=spec.loss)

    def text(self, progress: JobProgress | None) -> str:
        t = self.t
        elapsed = bt._clock_text(progress.elapsed_s if progress else 0.0)
        if progress is None or progress.state in ("starting", "loading") or not progress.bars_total:
            return self.head() + "\n" + t("hyperopt.progress.starting", elapsed=elapsed)
        best = "-" if progress.best_score is None else f"{progress.best_score:.3f}"
        return self.head() + "\n" + t("hyperopt.progress.line", percent=int(progress.fraction * 100),
                                      fold=min(progress.fold + 1, progress.folds), folds=progress.folds,
                                      done=progress.bars_done, total=progress.bars_total, best=best, elapsed=elapsed)

    async def _finish(self, progress: JobProgress) -> None:
        t, bot, state = self.t, self.request.context.bot, state_of(self.deps)
        if self.cancel_nonce is not None:
            self.deps.buttons.release(self.cancel_nonce)
        state.views.pop(progress.job_id, None)
        short, elapsed = progress.job_id[-12:], bt._clock_text(progress.elapsed_s)
        if progress.state == "cancelled":
            await bt._edit(bot, self.deps, self.chat_id, self.message_id,
                           t("hyperopt.cancelled", id=short, done=progress.bars_done, total=progress.bars_total,
                             elapsed=elapsed), None)
            return
        summary = progress.result
        if progress.state == "failed" or not isinstance(summary, HyperoptSummary):
            await bt._edit(bot, self.deps, self.chat_id, self.message_id,
                           t("hyperopt.failed", id=short, error=(progress.error or "no result")[:500]), None)
            return
        apply = (self.deps.buttons.add(KIND, self.request.caller, ttl_s=APPLY_TTL_S,
                                       payload=ApplyParams(dict(summary.best_params)), message_id=self.message_id,
                                       reusable=True, keep_text=True)
                 if summary.best_params else None)
        keyboard = None if apply is None else InlineKeyboardMarkup([[InlineKeyboardButton(
            t("hyperopt.button.apply"), callback_data=KIND.data(apply.nonce, "a"))]])
        replacement = await bt._edit(bot, self.deps, self.chat_id, self.message_id,
                                     result_text(t, summary, elapsed), keyboard)
        if replacement is not None and apply is not None:  # the results had to be sent anew: Apply follows them
            apply.message_id = replacement.message_id


def _number(value: float | None, percent: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value * 100:+.2f} %" if percent else f"{value:.3f}"


def params_lines(params: dict[str, Any]) -> list[str]:
    def shown(v: Any) -> str:
        if isinstance(v, (tuple, list)):
            return ", ".join(shown(x) for x in v)
        return f"{v:g}" if isinstance(v, float) else str(v)

    return [f"  {name} = {shown(value)}" for name, value in sorted(params.items())]


def result_text(t: Translator, s: HyperoptSummary, elapsed: str) -> str:
    lines = [t("hyperopt.finished", id=s.run_id[-12:], elapsed=elapsed, folds=s.folds, trials=s.trials),
             t("hyperopt.result.oos", loss=s.loss, score=_number(s.oos_score),
               total_return=_number(s.oos_total_return, True), drawdown=_number(s.oos_worst_drawdown, True)),
             t("hyperopt.result.is", score=_number(s.is_score))]
    if s.engine == "screening":
        lines.append(t("hyperopt.result.engine_differ" if s.engine_agreed is False
                       else "hyperopt.result.engine_screening"))
    else:
        lines.append(t("hyperopt.result.engine_backtrader"))
    if s.best_params:
        lines += ["", t("hyperopt.result.params")] + params_lines(s.best_params) + ["", t("hyperopt.result.apply")]
    else:
        lines.append(t("hyperopt.result.no_params"))
    return "\n".join(lines)


def refusal_text(t: Translator, exc: ServiceError) -> str:
    missing = exc.details.get("missing_data")
    if missing is not None:
        return t("hyperopt.missing_data", pairs=", ".join(fmt.short_pair(p) for p in missing.pairs),
                 timeframe=missing.timeframe, timerange=missing.timerange, command=missing.command)
    if exc.details.get("running"):
        return t("hyperopt.busy", id=str(exc.details["running"])[-12:],
                 kind=t(f"hyperopt.kind.{exc.details.get('kind') or 'backtest'}"))
    if exc.details.get("machine_busy"):
        return t("hyperopt.machine_busy")
    return service_error_text(t, exc)


# -- commands ---------------------------------------------------------------------------------------------------------
async def hyperopt(request: Request) -> None:
    t, deps, caller = request.t, request.deps, request.caller
    try:
        ask = parse(request.args, deps.settings.stake_currency)
    except bt.BadArgument as exc:
        await request.reply(t(exc.key, **exc.fields) + "\n" + t("usage.hyperopt"))
        return
    state = state_of(deps)
    view = HyperoptView(request)
    try:
        spec = await request.research.start_hyperopt(caller.actor, ask, view.from_thread)
    except ServiceError as exc:
        await request.reply(refusal_text(t, exc))
        return
    view.spec, view.job_id = spec, spec.run_id
    state.views[spec.run_id] = view
    stop = deps.buttons.add(KIND, caller, ttl_s=None, payload=bt.JobStop(spec.run_id))
    view.cancel_nonce = stop.nonce
    view.last_text = view.text(view.latest)
    message = await request.reply(view.last_text, view.keyboard())
    view.message_id = message.message_id
    deps.buttons.bind(stop, message.message_id)
    view.last_edit = time.monotonic()
    view.ready.set()


def _accepts(entry: Entry, choice: str) -> bool:
    return choice == ("x" if isinstance(entry.payload, bt.JobStop) else "a")


async def on_press(request: Request) -> None:
    deps, caller, t = request.deps, request.caller, request.t
    query = request.update.callback_query
    claimed = await deps.buttons.claim(deps, caller, query, t, KIND, _accepts)
    if claimed is None:
        return
    entry, _ = claimed
    if isinstance(entry.payload, bt.JobStop):
        await query.answer(deps.redactor(t("hyperopt.stopping")))
        try:
            await request.research.cancel_hyperopt(caller.actor, entry.payload.job_id)
        except ServiceError as exc:
            await request.reply(refusal_text(t, exc))
        return
    # Apply only asks (the button stays, so a cancelled question can be asked again); the question is stale once
    # other parameters were applied after it was asked.
    await query.answer()
    await ask_apply(request, dict(entry.payload.params))


async def ask_apply(request: Request, params: dict[str, Any]) -> None:
    service = request.service
    await service.check_strategy_params(params)  # parameters that no longer fit are refused now, not on Confirm

    async def run(caller: Caller, t: Translator) -> str:
        applied = await service.apply_strategy_params(caller.actor, params)
        key = "hyperopt.applied" if applied.restarted else "hyperopt.applied_next_start"
        return t(key, strategy=applied.strategy) + "\n" + "\n".join(params_lines(applied.after))

    question = "\n".join([request.t("hyperopt.confirm", strategy=request.deps.settings.strategy),
                          *params_lines(params)])
    arguments = {"params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}}
    await confirm.ask(request, question, "apply_strategy_params", arguments, run,
                      state=service.applied_strategy_params)


COMMANDS = [
    Command("hyperopt", hyperopt, "admin", "write", "help.hyperopt", group="research", buttons=PREFIX, on_press=on_press),
]
