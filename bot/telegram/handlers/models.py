"""/models, /predict and /train: the ML models from the phone.

``/models`` (viewer) lists the active models with their age and out-of-sample figures beside the baselines, and the
other stored versions. ``/predict PAIR`` (viewer) shows the probabilities per horizon as of the pair's newest
stored 5m bar with the training base rates beside them, or why there are none (no active model, no stored
candles, the prediction withheld: out of distribution, expired, too little history). ``/train [PAIRS] [Nd]
[xgb|gru|lstm]`` (admin) trains the XGBoost reversal model (default) or a GRU/LSTM direction model in a worker
process (trader.jobs.train; TensorFlow is imported there only) on the newest N days of stored candles (default 14;
the networks at most 14 days and within ``NET_BOUNDS``, so minutes, not hours); progress, throttling and the Stop
button are the backtest's (``ProgressView``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.i18n import Translator
from bot.telegram import formatting as fmt
from bot.telegram.buttons import Entry, Kind
from bot.telegram.context import BotDeps, Request, service_error_text
from bot.telegram.handlers import args
from bot.telegram.handlers import backtest as bt
from bot.telegram.registry import Command
from trader.config.pairs import normalize_pair
from trader.jobs.train import KINDS, MAX_DAYS, MAX_PAIRS, NET_MAX_DAYS, NETS, TrainAsk, TrainSummary
from trader.service.errors import ServiceError

if TYPE_CHECKING:
    from trader.jobs.runner import JobProgress
    from trader.jobs.train import TrainJobSpec

PREFIX = "tr"
KIND = Kind(PREFIX, "x", "train_button", "train.expired")
STATE_KEY = "trainings"
_DAYS = re.compile(r"^(\d{1,3})d$")
MAX_OTHER_VERSIONS = 5


# -- shared formatting ------------------------------------------------------------------------------------------------
def age_text(t: Translator, seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 3600:
        return t("ml.age.m", n=max(1, int(seconds // 60)))
    if seconds < 2 * 86400:
        return t("ml.age.h", n=int(seconds // 3600))
    return t("ml.age.d", n=int(seconds // 86400))


def short_version(version: str) -> str:
    """``v0003`` → ``v3``."""
    return f"v{int(version[1:])}" if version[:1] == "v" and version[1:].isdigit() else version


def status_line(t: Translator, state: Any, now_ms: int | None, latest: Any = None) -> str:
    """/status's ML line: "ML: off — no active model" or "ML: xgb v3, 2 h old", with the engine's newest
    prediction when there is one ("; last prediction 05-05 22:10, 1 min ago")."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if state is None:
        return t("status.ml_unknown")
    usable = [m for m in state.active if m.usable]
    if usable:
        line = t("status.ml_on", models=", ".join(
            t("ml.model_age", name=m.name, version=short_version(m.version), age=age_text(t, m.age_s(now)))
            for m in usable))
        if latest:
            at = dt.datetime.fromtimestamp(latest[0] / 1000, dt.UTC).strftime("%m-%d %H:%M")
            line += t("status.ml_latest", time=at, age=age_text(t, latest[1]))
        return line
    if state.active:
        m = state.active[0]
        return t("status.ml_unusable", name=m.name, version=short_version(m.version), reason=m.reason[:200])
    return t("status.ml_off")


def _num(v: Any, spec: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec)


def target_lines(t: Translator, summary: dict[str, Any]) -> list[str]:
    if not summary:
        return [t("models.no_metrics")]
    return [t("models.target", target=target, log_loss=_num(s.get("log_loss")), majority=_num(s.get("ll_majority")),
              persistence=_num(s.get("ll_persistence")), bal_acc=_num(s.get("bal_acc")),
              precision=_num(s.get("precision"), ".2f"), calls=s.get("calls", "-"),
              net_bps=_num(s.get("net_bps"), "+.1f"))
            for target, s in summary.items()]


def _day(ms: int | None) -> str:
    return "-" if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def models_text(t: Translator, view: Any) -> str:
    state, rows, now = view.state, view.rows, view.now_ms
    if not rows and not state.active:
        return t("models.none")
    lines = [t("models.title")]
    by_key = {(r["name"], r["version"]): r for r in rows}
    if not state.active:
        lines.append(t("models.no_active"))
    for m in state.active:
        row = by_key.get((m.name, m.version), {})
        training = row.get("training") or {}
        if m.usable:
            lines.append(t("models.active", name=m.name, version=short_version(m.version), kind=m.kind or "?",
                           age=age_text(t, m.age_s(now)), expires=_day(m.expires_ms),
                           pairs=", ".join(fmt.short_pair(p) for p in training.get("pairs", [])) or "-",
                           span=f"{_day(training.get('start_ms'))} → {_day(training.get('end_ms'))}"))
        else:
            lines.append(t("models.unusable", name=m.name, version=short_version(m.version), reason=m.reason[:300]))
        lines += target_lines(t, m.summary)
        st = row.get("seed_target")
        if st:
            lines.append(t("models.seed_met" if st.get("met") else "models.seed_not_met",
                           precision=_num(st.get("value"), ".1%"), calls=st.get("calls", "-")))
        if row.get("promotion"):
            lines.append(t("models.promotion", reason=str(row["promotion"].get("reason", ""))[:200]))
    active = {(m.name, m.version) for m in state.active}
    others = [r for r in reversed(rows) if (r["name"], r["version"]) not in active]
    if others:
        shown = [f"{r['name']} {short_version(r['version'])}" + (f" ({t('models.expired')})" if r["expired"] else "")
                 for r in others[:MAX_OTHER_VERSIONS]]
        more = len(others) - len(shown)
        lines.append(t("models.others", versions=", ".join(shown) + (f" +{more}" if more > 0 else "")))
    lines.append(t("models.note"))
    return "\n".join(lines)


def _pct(p: float) -> str:
    return f"{p * 100:.0f}%"


def predict_text(t: Translator, view: Any, tz: str) -> str:
    pair = fmt.short_pair(view.pair)
    if view.reason == "no_model":
        return t("predict.no_model", pair=pair)
    if view.reason == "no_data" or view.prediction is None:
        return t("predict.no_data", pair=pair)
    p = view.prediction
    when = fmt.local_time(dt.datetime.fromtimestamp(view.at_ms / 1000, dt.UTC), tz) if view.at_ms else "-"
    age = age_text(t, max(0.0, (view.now_ms - view.at_ms) / 1000)) if view.at_ms else "?"
    title = "predict.title_engine" if getattr(view, "source", "store") == "engine" else "predict.title"
    lines = [t(title, pair=pair, time=when, age=age)]
    if p.withheld_reason is not None:
        lines.append(t("predict.withheld", reason=p.withheld_reason[:500]))
        return "\n".join(lines)
    for target in sorted((k for k in p.probabilities if k.startswith("dir_")), key=lambda k: int(k.split("_")[1])):
        q, b = p.probabilities[target], p.baseline.get(target) or (math.nan,) * 3
        lines.append(t("predict.dir", minutes=target.split("_")[1], down=_pct(q[0]), flat=_pct(q[1]), up=_pct(q[2]),
                       b_down=_pct(b[0]), b_flat=_pct(b[1]), b_up=_pct(b[2])))
    if "reversal" in p.probabilities:
        q, b = p.probabilities["reversal"], p.baseline.get("reversal") or (math.nan,) * 3
        lines.append(t("predict.reversal", none=_pct(q[0]), bottom=_pct(q[1]), top=_pct(q[2]),
                       b_none=_pct(b[0]), b_bottom=_pct(b[1]), b_top=_pct(b[2])))
    if p.vote is not None:
        call = (t("predict.vote.up") if p.vote.direction > 0 else t("predict.vote.down") if p.vote.direction < 0
                else t("predict.vote.none", reason=p.vote.reason or "-"))
        lines.append(t("predict.vote", call=call))
    for name, reason in sorted(p.withheld.items()):
        lines.append(t("predict.model_withheld", name=name, reason=reason[:200]))
    lines.append(t("predict.models", models=", ".join(f"{k} {short_version(v)}" for k, v in sorted(p.models.items()))))
    lines.append(t("predict.note"))
    return "\n".join(lines)


# -- /train -----------------------------------------------------------------------------------------------------------
def parse(tokens: list[str], quote: str = "USDT") -> TrainAsk:
    """``[PAIRS] [Nd] [xgb|gru|lstm]`` in any order; raises ``backtest.BadArgument`` with a catalog key."""
    pairs: tuple[str, ...] | None = None
    days: int | None = None
    model: str | None = None
    for token in tokens:
        if token.lower() in KINDS:
            if model is not None:  # one model per run (and no pair is called GRU)
                raise bt.BadArgument("train.bad_argument", text=token[:40], max=MAX_DAYS)
            model = token.lower()
            continue
        found = _DAYS.match(token.lower())
        if found and days is None:
            days = int(found.group(1))
            if not 1 <= days <= MAX_DAYS:
                raise bt.BadArgument("train.bad_days", text=token[:20], max=MAX_DAYS)
            continue
        if pairs is None:
            try:
                pairs = tuple(dict.fromkeys(normalize_pair(p, quote) for p in token.split(",") if p))
            except ValueError:
                raise bt.BadArgument("train.bad_argument", text=token[:40], max=MAX_DAYS) from None
            if not pairs:
                raise bt.BadArgument("train.bad_argument", text=token[:40], max=MAX_DAYS)
            if len(pairs) > MAX_PAIRS:
                raise bt.BadArgument("train.too_many_pairs", count=len(pairs), max=MAX_PAIRS)
            continue
        raise bt.BadArgument("train.bad_argument", text=token[:40], max=MAX_DAYS)
    if model in NETS and days is not None and days > NET_MAX_DAYS:
        raise bt.BadArgument("train.net_days", model=model, max=NET_MAX_DAYS)
    return TrainAsk(pairs=pairs, **({"days": days} if days is not None else {}),
                    **({"model": model} if model is not None else {}))


@dataclass
class State:
    views: dict[str, TrainView] = field(default_factory=dict)  # job id → its message; keeps tasks alive


def state_of(deps: BotDeps) -> State:
    found = deps.extras.get(STATE_KEY)
    if found is None:
        found = deps.extras[STATE_KEY] = State()
    return found


class TrainView(bt.ProgressView):
    """The backtest's progress message (throttled edits, Stop button), with training texts and the outcome."""

    def __init__(self, request: Request):
        super().__init__(request, bt.Draft())
        self.spec: TrainJobSpec | None = None

    def keyboard(self) -> InlineKeyboardMarkup | None:
        if self.cancel_nonce is None:
            return None
        return InlineKeyboardMarkup([[InlineKeyboardButton(self.t("train.button.stop"),
                                                           callback_data=KIND.data(self.cancel_nonce, "x"))]])

    def head(self) -> str:
        spec = self.spec
        assert spec is not None
        return self.t("train.running", model=", ".join(spec.names),
                      pairs=", ".join(fmt.short_pair(p) for p in spec.pairs), timerange=spec.timerange)

    def text(self, progress: JobProgress | None) -> str:
        elapsed = bt._clock_text(progress.elapsed_s if progress else 0.0)
        if progress is None or progress.state in ("starting", "loading") or not progress.bars_total:
            return self.head() + "\n" + self.t("train.progress.starting", elapsed=elapsed)
        return self.head() + "\n" + self.t("train.progress.line", percent=int(progress.fraction * 100),
                                           elapsed=elapsed)

    async def _finish(self, progress: JobProgress) -> None:
        t, bot = self.t, self.request.context.bot
        if self.cancel_nonce is not None:
            self.deps.buttons.release(self.cancel_nonce)
        state_of(self.deps).views.pop(progress.job_id, None)
        short, elapsed = progress.job_id[-12:], bt._clock_text(progress.elapsed_s)
        if progress.state == "cancelled":
            text = t("train.cancelled", id=short, elapsed=elapsed)
        elif progress.state == "failed" or not isinstance(progress.result, TrainSummary):
            text = t("train.failed", id=short, error=(progress.error or "no result")[:500])
        else:
            text = result_text(t, progress.result, elapsed)
        await bt._edit(bot, self.deps, self.chat_id, self.message_id, text, None)


def result_text(t: Translator, s: TrainSummary, elapsed: str) -> str:
    lines = [t("train.finished", id=s.run_id[-12:], elapsed=elapsed)]
    for m in s.models:
        lines.append(t("train.activated" if m.activated else "train.not_activated", name=m.name,
                       version=short_version(m.version), note=m.note))
        lines += target_lines(t, m.summary)
    lines.append(t("models.note"))
    return "\n".join(lines)


def refusal_text(t: Translator, exc: ServiceError) -> str:
    missing = exc.details.get("missing_data")
    if missing is not None:
        return t("train.missing_data", pairs=", ".join(fmt.short_pair(p) for p in missing.pairs),
                 command=missing.command)
    if exc.details.get("running"):
        return t("hyperopt.busy", id=str(exc.details["running"])[-12:],
                 kind=t(f"hyperopt.kind.{exc.details.get('kind') or 'backtest'}"))
    if exc.details.get("machine_busy"):
        return t("hyperopt.machine_busy")
    return service_error_text(t, exc)


# -- commands ---------------------------------------------------------------------------------------------------------
async def models(request: Request) -> None:
    if request.args:
        await args.usage(request)
        return
    await request.reply(models_text(request.t, await request.research.models()))


async def predict(request: Request) -> None:
    if len(request.args) != 1:
        await args.usage(request)
        return
    found = await args.pairs(request, request.args)
    if found is None:
        return
    try:
        view = await request.research.predict(found[0])
    except ServiceError as exc:
        await request.reply(service_error_text(request.t, exc))
        return
    await request.reply(predict_text(request.t, view, request.caller.settings.timezone))


async def train(request: Request) -> None:
    t, deps, caller = request.t, request.deps, request.caller
    try:
        ask = parse(request.args, deps.settings.stake_currency)
    except bt.BadArgument as exc:
        await request.reply(t(exc.key, **exc.fields) + "\n" + t("usage.train"))
        return
    view = TrainView(request)
    try:
        spec = await request.research.start_train(caller.actor, ask, view.from_thread)
    except ServiceError as exc:
        await request.reply(refusal_text(t, exc))
        return
    view.spec, view.job_id = spec, spec.run_id
    state_of(deps).views[spec.run_id] = view
    stop = deps.buttons.add(KIND, caller, ttl_s=None, payload=bt.JobStop(spec.run_id))
    view.cancel_nonce = stop.nonce
    view.last_text = view.text(view.latest)
    message = await request.reply(view.last_text, view.keyboard())
    view.message_id = message.message_id
    deps.buttons.bind(stop, message.message_id)
    view.last_edit = time.monotonic()
    view.ready.set()


def _accepts(entry: Entry, choice: str) -> bool:
    return isinstance(entry.payload, bt.JobStop) and choice == "x"


async def on_press(request: Request) -> None:
    deps, caller, t = request.deps, request.caller, request.t
    query = request.update.callback_query
    claimed = await deps.buttons.claim(deps, caller, query, t, KIND, _accepts)
    if claimed is None:
        return
    entry, _ = claimed
    await query.answer(deps.redactor(t("train.stopping")))
    try:
        await request.research.cancel_train(caller.actor, entry.payload.job_id)
    except ServiceError as exc:
        await request.reply(refusal_text(t, exc))


COMMANDS = [
    Command("models", models, "viewer", "read", "help.models", group="research"),
    Command("predict", predict, "viewer", "read", "help.predict", group="research"),
    Command("train", train, "admin", "write", "help.train", group="research", buttons=PREFIX, on_press=on_press),
]
