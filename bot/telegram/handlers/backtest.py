"""/backtest, /backtests and /backtest_show: backtests from the phone.

``/backtest [strategy] [pairs] [timeframe] [timerange | days]`` asks with inline buttons for whatever is missing,
then the service runs it in a worker process (trader.jobs). One message shows the progress, edited at most every
``EDIT_INTERVAL_S`` (Telegram throttles edits of a message), with a Cancel button; at the end come the summary
and the charts. Buttons carry only ``bt:<nonce>:<choice>``; what a nonce means lives here, bound to the user,
chat and message it was posted to, usable once, expiring after ``PICK_TTL_S`` (a Stop button lives as long as
its job), kept in the bot's one button store (buttons.py). A step with a single choice is not asked: it is taken.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import TelegramError

from bot.i18n import Translator
from bot.telegram import formatting as fmt
from bot.telegram.buttons import Entry, Kind, edit_or_send
from bot.telegram.context import BotDeps, Request, send_text, service_error_text
from bot.telegram.handlers import args
from bot.telegram.registry import Command
from reports.charts import montecarlo as mc_chart
from reports.charts import pairs as pairs_chart
from reports.charts import pnl as pnl_chart
from reports.charts.backtest import LABELS as REPORT_LABELS
from reports.charts.backtest import backtest_pngs
from reports.text.backtest import backtest_rows
from trader.config.pairs import normalize_pair
from trader.jobs.data import DAY_MS, MAX_DAYS, TIMEFRAMES, BacktestAsk, MissingData, resolve_range
from trader.service.errors import ServiceError
from trader.strategy.reference import STRATEGIES

if TYPE_CHECKING:
    from trader.jobs.runner import JobProgress

log = logging.getLogger(__name__)

PREFIX = "bt"
_RANGE = re.compile(r"^\d{8}-\d{8}$|^\d{8}-$|^-\d{8}$")
_DAYS = re.compile(r"^\d{1,5}d$")
_TIMEFRAME_SHAPE = re.compile(r"^\d{1,3}[mhdwM]$")
PICK_TTL_S = 120.0
EDIT_INTERVAL_S = 2.0  # Telegram answers 429 to a message edited much faster than this
MAX_PAIRS = 10
LIST_LIMIT = 10
PICK_TIMEFRAMES = ("5m", "15m", "1h", "4h")
STORED_DAYS = (3, 14)  # the picker's "last N days of stored data" choices, plus all of it
RECENT_DAYS = (7, 30)  # and "the last N days up to today"
FIELDS = ("strategy", "pairs", "timeframe", "timerange")
STATE_KEY = "backtests"
CHARTS = ("report", "daily_pnl", "pairs", "montecarlo")


# -- arguments --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Draft:
    strategy: str | None = None
    pairs: tuple[str, ...] | None = None
    timeframe: str | None = None
    timerange: str | None = None

    def missing(self) -> str | None:
        return next((f for f in FIELDS if getattr(self, f) is None), None)

    def ask(self) -> BacktestAsk:
        assert self.strategy and self.pairs and self.timeframe and self.timerange
        return BacktestAsk(self.strategy, self.pairs, self.timeframe, self.timerange)


class BadArgument(Exception):
    def __init__(self, key: str, **fields: Any):
        super().__init__(key)
        self.key = key
        self.fields = fields


def parse(tokens: list[str], quote: str = "USDT") -> Draft:
    """Arguments in any order, told apart by shape: a strategy name, ``20250504-20250603``, a timeframe, then
    ``<n>d`` days (so ``1d`` alone is a timeframe), and everything else pairs (also comma-separated)."""
    draft = Draft()
    pairs: list[str] = []
    for token in tokens:
        low = token.lower()
        if low in STRATEGIES and draft.strategy is None:
            draft = replace(draft, strategy=low)
        elif _RANGE.match(low) or (_DAYS.match(low) and (low not in TIMEFRAMES or draft.timeframe is not None)):
            if draft.timerange is not None:
                raise BadArgument("backtest.bad_argument", text=token[:40], strategies=", ".join(sorted(STRATEGIES)))
            try:
                resolve_range(low)
            except ValueError:
                raise BadArgument("backtest.bad_range", text=token[:40], max_days=MAX_DAYS) from None
            draft = replace(draft, timerange=low)
        elif low in TIMEFRAMES and draft.timeframe is None:
            draft = replace(draft, timeframe=low)
        elif _TIMEFRAME_SHAPE.match(token):
            raise BadArgument("backtest.bad_timeframe", text=token[:40], choices=", ".join(TIMEFRAMES))
        else:
            for part in filter(None, token.split(",")):
                try:
                    pairs.append(normalize_pair(part, quote))
                except ValueError:
                    raise BadArgument("backtest.bad_argument", text=part[:40],
                                      strategies=", ".join(sorted(STRATEGIES))) from None
    if pairs:
        unique = tuple(dict.fromkeys(pairs))
        if len(unique) > MAX_PAIRS:
            raise BadArgument("backtest.too_many_pairs", count=len(unique), max=MAX_PAIRS)
        draft = replace(draft, pairs=unique)
    return draft


# -- buttons ------------------------------------------------------------------------------------------------------------
KIND = Kind(PREFIX, r"x|\d{1,2}", "backtest_button", "backtest.pick.expired")


@dataclass
class Picker:
    """A picker step's keyboard: the draft so far and the value behind each numbered button."""

    draft: Draft
    choices: list[Any] = field(default_factory=list)


@dataclass
class JobStop:
    """A running job's Stop button: lives until the job ends."""

    job_id: str


@dataclass
class State:
    views: dict[str, ProgressView] = field(default_factory=dict)  # job id → its message; keeps tasks alive


def state_of(deps: BotDeps) -> State:
    found = deps.extras.get(STATE_KEY)
    if found is None:
        found = deps.extras[STATE_KEY] = State()
    return found


def _keyboard(t: Translator, nonce: str, labels: list[str], columns: int = 2) -> InlineKeyboardMarkup:
    rows = [[InlineKeyboardButton(label, callback_data=KIND.data(nonce, str(i)))
             for i, label in enumerate(labels)][k:k + columns] for k in range(0, len(labels), columns)]
    rows.append([InlineKeyboardButton(t("backtest.button.cancel"), callback_data=KIND.data(nonce, "x"))])
    return InlineKeyboardMarkup(rows)


def _described(t: Translator, draft: Draft) -> str:
    return t("backtest.chosen", strategy=draft.strategy or "…",
             pairs=", ".join(fmt.short_pair(p) for p in draft.pairs) if draft.pairs else "…",
             timeframe=draft.timeframe or "…", timerange=draft.timerange or "…")


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y%m%d")


async def _choices(request: Request, draft: Draft, step: str) -> tuple[list[str], list[Any]]:
    """(button labels, values) for a picker step."""
    t = request.t
    if step == "strategy":
        names = sorted(STRATEGIES)
        return names, names
    if step == "pairs":
        whitelist = list((await request.service.whitelist()).pairs)
        labels = [fmt.short_pair(p) for p in whitelist]
        values: list[Any] = [(p,) for p in whitelist]
        if len(whitelist) > 1:
            labels.append(t("backtest.pick.all_pairs", count=len(whitelist)))
            values.append(tuple(whitelist))
        return labels, values
    if step == "timeframe":
        return list(PICK_TIMEFRAMES), list(PICK_TIMEFRAMES)
    labels, values = [], []
    assert draft.pairs and draft.timeframe
    stored = await request.research.backtest_data(list(draft.pairs), draft.timeframe)
    if stored is not None:
        # Whole UTC days inside what is stored (a partial first day is within the store check's slack).
        end = stored.end_ms - stored.end_ms % DAY_MS
        first = stored.first_ms - stored.first_ms % DAY_MS
        for days in STORED_DAYS:
            if end - days * DAY_MS >= first:
                rng = f"{_day(end - days * DAY_MS)}-{_day(end)}"
                labels.append(t("backtest.pick.stored_days", days=days, range=rng))
                values.append(rng)
        if end > first:
            rng = f"{_day(first)}-{_day(end)}"
            labels.append(t("backtest.pick.stored_all", range=rng))
            values.append(rng)
    for days in RECENT_DAYS:
        labels.append(t("backtest.pick.recent_days", days=days))
        values.append(f"{days}d")
    return labels, values


async def _ask_next(request: Request, draft: Draft, message: Any | None) -> None:
    """Post (or edit ``message`` into) the picker for the first missing argument, or start the run. A step with
    one possible answer (one strategy, one whitelisted pair) is answered without asking."""
    while True:
        step = draft.missing()
        if step is None:
            await _launch(request, draft, message)
            return
        labels, values = await _choices(request, draft, step)
        if len(values) != 1:
            break
        draft = replace(draft, **{step: values[0]})
    t = request.t
    text = t(f"backtest.pick.{step}") + "\n" + _described(t, draft)
    store = request.deps.buttons
    entry = store.add(KIND, request.caller, ttl_s=PICK_TTL_S, payload=Picker(draft, values))
    keyboard = _keyboard(t, entry.nonce, labels, columns=1 if step == "timerange" else 2)
    if message is None:
        store.bind(entry, (await request.reply(text, keyboard)).message_id)
    else:
        store.bind(entry, message.message_id)
        store.bind(entry, getattr(await _edit(request.context.bot, request.deps, request.caller.chat_id,
                                              message.message_id, text, keyboard), "message_id", message.message_id))


# -- running ----------------------------------------------------------------------------------------------------------
class ProgressView:
    """One job's message: progress edits throttled to one per EDIT_INTERVAL_S, the latest state always shown
    last; the outcome, summary and charts when the job ends."""

    def __init__(self, request: Request, draft: Draft):
        self.request = request
        self.deps = request.deps
        self.t = request.t
        self.chat_id = request.caller.chat_id
        self.draft = draft
        self.message_id = 0
        self.ready = asyncio.Event()  # set once the message exists: progress may arrive before it does
        self.loop = asyncio.get_running_loop()
        self.job_id: str | None = None
        self.cancel_nonce: str | None = None
        self.latest: JobProgress | None = None
        self.last_edit = 0.0
        self.last_text = ""
        self.timer: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.finished = False
        self.editing = asyncio.Lock()  # one edit at a time, so a late progress edit never lands after the outcome

    # Called from the job's follower thread: hop onto the bot's loop.
    def from_thread(self, progress: JobProgress) -> None:
        try:
            self.loop.call_soon_threadsafe(self.update, progress)
        except RuntimeError:  # the bot has stopped; the run is stored regardless
            pass

    def _spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def update(self, progress: JobProgress) -> None:
        if self.finished:
            return
        self.job_id = progress.job_id
        if progress.final:
            self.finished = True
            if self.timer is not None:
                self.timer.cancel()
            self._spawn(self.finish(progress))
            return
        self.latest = progress
        wait = EDIT_INTERVAL_S - (time.monotonic() - self.last_edit)
        if wait <= 0:
            self.last_edit = time.monotonic()
            self._spawn(self.show())
        elif self.timer is None:
            self.timer = self.loop.call_later(wait, self._due)

    def _due(self) -> None:
        self.timer = None
        if not self.finished:
            self.last_edit = time.monotonic()
            self._spawn(self.show())

    def keyboard(self) -> InlineKeyboardMarkup | None:
        if self.cancel_nonce is None:
            return None
        return InlineKeyboardMarkup([[InlineKeyboardButton(self.t("backtest.button.stop"),
                                                           callback_data=KIND.data(self.cancel_nonce, "x"))]])

    def text(self, progress: JobProgress | None) -> str:
        t = self.t
        head = t("backtest.running", strategy=self.draft.strategy,
                 pairs=", ".join(fmt.short_pair(p) for p in self.draft.pairs or ()),
                 timeframe=self.draft.timeframe, timerange=self.draft.timerange)
        if progress is None or progress.state in ("starting", "loading") or not progress.bars_total:
            return head + "\n" + t("backtest.progress.starting",
                                   elapsed=_clock_text(progress.elapsed_s if progress else 0.0))
        return head + "\n" + t("backtest.progress.line", percent=int(progress.fraction * 100),
                               done=f"{progress.bars_done:,}", total=f"{progress.bars_total:,}",
                               elapsed=_clock_text(progress.elapsed_s))

    async def show(self) -> None:
        async with self.editing:
            if self.finished or not self.ready.is_set():
                return
            text = self.text(self.latest)
            if text == self.last_text:
                return
            self.last_text = text
            self._moved(await _edit(self.request.context.bot, self.deps, self.chat_id, self.message_id, text,
                                    self.keyboard()))

    def _moved(self, replacement: Any | None) -> None:
        """Later edits (and the Stop button) follow a message that had to be sent anew."""
        if replacement is None:
            return
        self.message_id = replacement.message_id
        if self.cancel_nonce:
            self.deps.buttons.bind(self.deps.buttons.peek(self.cancel_nonce), replacement.message_id)

    async def finish(self, progress: JobProgress) -> None:
        await self.ready.wait()
        async with self.editing:
            await self._finish(progress)

    async def _finish(self, progress: JobProgress) -> None:
        t, bot = self.t, self.request.context.bot
        if self.cancel_nonce is not None:
            self.deps.buttons.release(self.cancel_nonce)
        state_of(self.deps).views.pop(progress.job_id, None)
        short = progress.job_id[-12:]
        elapsed = _clock_text(progress.elapsed_s)
        if progress.state == "cancelled":
            await _edit(bot, self.deps, self.chat_id, self.message_id,
                        t("backtest.cancelled", id=short, done=f"{progress.bars_done:,}",
                          total=f"{progress.bars_total:,}", elapsed=elapsed), None)
            return
        if progress.state == "failed":
            text = t("backtest.failed", id=short, error=progress.error[:500])
            if progress.missing_data and self.draft.pairs and self.draft.timeframe and self.draft.timerange:
                # A file vanished between the service's check and the worker's read: same advice as the check.
                lacking = MissingData(self.draft.pairs, self.draft.timeframe, str(resolve_range(self.draft.timerange)))
                text = missing_text(t, lacking)
            await _edit(bot, self.deps, self.chat_id, self.message_id, text, None)
            return
        await _edit(bot, self.deps, self.chat_id, self.message_id,
                    t("backtest.finished", id=short, bars=f"{progress.bars_total:,}", elapsed=elapsed), None)
        try:
            stored = await self.request.research.backtest(progress.job_id)
            await send_run(bot, self.deps, self.chat_id, t, self.request.caller.settings.timezone, stored)
        except (TelegramError, ServiceError) as exc:
            log.warning("backtest %s: results not delivered: %s", progress.job_id, exc)


def _clock_text(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


async def _edit(bot: Any, deps: BotDeps, chat_id: int, message_id: int, text: str,
                keyboard: InlineKeyboardMarkup | None) -> Any | None:
    """Edit the message; the replacement message when it had to be sent anew (None otherwise)."""
    return await edit_or_send(bot, deps, chat_id, message_id, text, keyboard)


async def _launch(request: Request, draft: Draft, message: Any | None) -> None:
    """Ask the service first, so a refusal is one plain answer; then post (or edit the picker into) the
    progress message with its Stop button."""
    t, deps, caller, bot = request.t, request.deps, request.caller, request.context.bot
    state = state_of(deps)
    view = ProgressView(request, draft)
    try:
        job_id = await request.research.start_backtest(caller.actor, draft.ask(), view.from_thread)
    except ServiceError as exc:
        if message is None:
            await request.reply(refusal_text(t, exc))
        else:
            await _edit(bot, deps, caller.chat_id, message.message_id, refusal_text(t, exc), None)
        return
    view.job_id = job_id
    state.views[job_id] = view
    stop = deps.buttons.add(KIND, caller, ttl_s=None, payload=JobStop(job_id))
    view.cancel_nonce = stop.nonce
    view.last_text = view.text(view.latest)
    if message is None:
        message = await request.reply(view.last_text, view.keyboard())
    else:
        message = await _edit(bot, deps, caller.chat_id, message.message_id, view.last_text,
                              view.keyboard()) or message
    view.message_id = message.message_id
    deps.buttons.bind(stop, message.message_id)
    view.last_edit = time.monotonic()
    view.ready.set()


def missing_text(t: Translator, missing: MissingData) -> str:
    return t("backtest.missing_data", pairs=", ".join(fmt.short_pair(p) for p in missing.pairs),
             timeframe=missing.timeframe, timerange=missing.timerange, command=missing.command)


def refusal_text(t: Translator, exc: ServiceError) -> str:
    missing = exc.details.get("missing_data")
    if missing is not None:
        return missing_text(t, missing)
    if exc.details.get("running"):
        kind = exc.details.get("kind")
        if kind in ("hyperopt", "train"):  # the user's one heavy job is an optimisation or a training
            return t("hyperopt.busy", id=str(exc.details["running"])[-12:], kind=t(f"hyperopt.kind.{kind}"))
        return t("backtest.busy", id=str(exc.details["running"])[-12:])
    if exc.details.get("machine_busy"):
        return t("backtest.machine_busy")
    return service_error_text(t, exc)


# -- results ----------------------------------------------------------------------------------------------------------
def summary_text(t: Translator, result: Any, run_id: str, tz: str) -> str:
    lines = [t("backtest.summary.title", id=run_id[-12:])]
    lines += [t("backtest.summary.line", label=t(f"backtest.row.{row.key}"), value=row.value)
              for row in backtest_rows(result, tz)]
    lines.append("")
    lines.append(t("backtest.summary.show", id=run_id[-12:]))
    return "\n".join(lines)


async def send_run(bot: Any, deps: BotDeps, chat_id: int, t: Translator, tz: str, stored: Any) -> None:
    """A stored run: summary and charts when its result is there, else what became of it."""
    if stored is None:
        return
    run = stored.run
    if stored.result is None:
        lines = [run_line(t, run, tz)]
        if run.error:
            lines.append(t("backtest.show.error", error=run.error[:500]))
        lines.append(t("backtest.show.no_result"))
        await send_text(bot, chat_id, deps.redactor("\n".join(lines)))
        return
    await send_text(bot, chat_id, deps.redactor(summary_text(t, stored.result, run.id, tz)))
    # Rendering is a second or two of CPU: off the bot's loop.
    pngs = await asyncio.to_thread(backtest_pngs, stored.result, tz=tz, labels=chart_labels(t))
    for key in CHARTS:
        if key in pngs:
            await bot.send_photo(chat_id, pngs[key], caption=t(f"backtest.chart.{key}"))


CHART_LABEL_KEYS = {"report": tuple(REPORT_LABELS), "daily_pnl": tuple(pnl_chart.LABELS),
                    "pairs": tuple(pairs_chart.LABELS), "montecarlo": tuple(mc_chart.LABELS)}


def chart_labels(t: Translator) -> dict[str, dict[str, str]]:
    """The charts' words in the user's language (each chart's LABELS names its keys)."""
    return {chart: {key: t(f"chart.{chart}.{key}") for key in names}
            for chart, names in CHART_LABEL_KEYS.items()}


def run_line(t: Translator, run: Any, tz: str) -> str:
    result = "-"
    if run.total_return is not None:
        result = t("backtest.list.result", total_return=f"{run.total_return * 100:+.2f} %", trades=run.trades)
    return t("backtest.list.line", id=run.id[-12:], status=t(f"backtest.status.{run.status}"),
             created=fmt.local_time(run.created_at, tz, "%m-%d %H:%M"), strategy=run.strategy,
             pairs=", ".join(fmt.short_pair(p) for p in run.pairs), timeframe=run.timeframe,
             timerange=run.timerange, result=result)


# -- commands ---------------------------------------------------------------------------------------------------------
async def backtest(request: Request) -> None:
    try:
        draft = parse(request.args, request.deps.settings.stake_currency)
    except BadArgument as exc:
        await request.reply(request.t(exc.key, **exc.fields) + "\n" + request.t("usage.backtest"))
        return
    await _ask_next(request, draft, None)


async def backtests(request: Request) -> None:
    if request.args:
        await args.usage(request)
        return
    runs = await request.research.backtests(LIST_LIMIT)
    t, tz = request.t, request.caller.settings.timezone
    if not runs:
        await request.reply(t("backtest.list.none"))
        return
    lines = [t("backtest.list.title", count=len(runs))] + [run_line(t, r, tz) for r in runs]
    lines += ["", t("backtest.list.footer")]
    await request.reply("\n".join(lines))


async def backtest_show(request: Request) -> None:
    if len(request.args) != 1 or len(request.args[0]) > 64:
        await args.usage(request)
        return
    stored = await request.research.backtest(request.args[0])
    if stored is None:
        await request.reply(request.t("backtest.show.unknown", id=request.args[0][:64]))
        return
    await send_run(request.context.bot, request.deps, request.caller.chat_id, request.t,
                   request.caller.settings.timezone, stored)


def _accepts(entry: Entry, choice: str) -> bool:
    if isinstance(entry.payload, JobStop):
        return choice == "x"
    return choice == "x" or int(choice) < len(entry.payload.choices)


async def on_press(request: Request) -> None:
    deps, caller, t = request.deps, request.caller, request.t
    query = request.update.callback_query
    claimed = await deps.buttons.claim(deps, caller, query, t, KIND, _accepts)
    if claimed is None:
        return
    entry, choice = claimed
    if isinstance(entry.payload, JobStop):  # the running job's Stop
        await query.answer(deps.redactor(t("backtest.stopping")))
        try:
            await request.research.cancel_backtest(caller.actor, entry.payload.job_id)
        except ServiceError as exc:
            await request.reply(refusal_text(t, exc))
        return
    assert entry.message_id is not None
    if choice == "x":
        await query.answer()
        await _edit(request.context.bot, deps, caller.chat_id, entry.message_id, t("backtest.pick.cancelled"), None)
        return
    picker: Picker = entry.payload
    await query.answer()
    step = picker.draft.missing()
    draft = replace(picker.draft, **{step: picker.choices[int(choice)]}) if step else picker.draft
    await _ask_next(request, draft, query.message)


COMMANDS = [
    Command("backtest", backtest, "trader", "write", "help.backtest", group="research", buttons=PREFIX, on_press=on_press),
    Command("backtests", backtests, "viewer", "read", "help.backtests", group="research"),
    Command("backtest_show", backtest_show, "viewer", "read", "help.backtest_show", group="research"),
]
