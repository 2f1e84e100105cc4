"""The configuration schema.

Every key is declared here with its type, bounds and default; an unknown key is an error (``extra="forbid"``),
so a typo never silently falls back to a default. Integers and booleans are strict: ``"25"`` is not a leverage.
Environment values arrive as text and are parsed by the loader before they reach this schema.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    AnyWebsocketUrl,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    Strict,
    field_validator,
    model_validator,
)

from trader.config.pairs import normalize_pair
from trader.events import EVENT_KINDS

Role = Literal["viewer", "trader", "admin"]
Timeframe = Literal["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Language = Literal["en", "zh_CN"]

SInt = Annotated[int, Strict()]
SBool = Annotated[bool, Strict()]
Fraction = Annotated[float, Field(gt=0, le=1)]
Positive = Annotated[float, Field(gt=0)]

Pair = Annotated[str, AfterValidator(normalize_pair)]

BINANCE_MAX_LEVERAGE = 125


def _stake_amount(value: object) -> Decimal | str:
    if value == "unlimited":
        return "unlimited"
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError("must be a positive number or 'unlimited'")
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        raise ValueError("must be a positive number or 'unlimited'") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError("must be a positive number or 'unlimited'")
    return amount


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ExchangeConfig(StrictModel):
    name: Literal["binance"] = "binance"
    key: SecretStr | None = None
    secret: SecretStr | None = None
    # Base URLs for REST and websocket; unset means Binance itself. Point both at `bsmart sim` for offline work.
    api_url: AnyHttpUrl | None = None
    ws_url: AnyWebsocketUrl | None = None
    recv_window_ms: Annotated[SInt, Field(ge=1, le=60_000)] = 5_000
    timeout_ms: Annotated[SInt, Field(ge=100, le=120_000)] = 10_000

    @property
    def has_credentials(self) -> bool:
        return bool(self.key and self.key.get_secret_value() and self.secret and self.secret.get_secret_value())


class TakeProfitTier(StrictModel):
    move: Fraction  # price move from entry, as a fraction (0.008 = 0.8 %)
    close: Fraction  # share of the original position closed at this tier


class LatencyTiers(StrictModel):
    """Round-trip p99 thresholds in milliseconds (risk-rules.md, latency tiers)."""

    safe_ms: Annotated[SInt, Field(ge=1)] = 100
    no_entries_ms: Annotated[SInt, Field(ge=1)] = 500
    emergency_ms: Annotated[SInt, Field(ge=1)] = 1000
    hold_seconds: Annotated[SInt, Field(ge=0)] = 60
    # Above emergency_ms: close every position ("flatten") or only stop new entries ("block_entries").
    emergency_action: Literal["flatten", "block_entries"] = "flatten"

    @model_validator(mode="after")
    def _ascending(self) -> LatencyTiers:
        if not self.safe_ms < self.no_entries_ms < self.emergency_ms:
            raise ValueError("latency tiers must ascend: safe_ms < no_entries_ms < emergency_ms")
        return self


class LiquidityConfig(StrictModel):
    """Liquidity tiers (trader/risk/liquidity.py): health = min(depth / required, max_spread / spread)."""

    max_spread: Fraction = 0.005
    depth_band: Fraction = 0.005  # depth is summed within ±band around mid
    depth_share_of_volume: Fraction = 0.001  # required depth = share × 24 h quote volume
    # Warning levels as fractions of the threshold: below the first mild, the second moderate, the third severe.
    levels: Annotated[list[Fraction], Field(min_length=3, max_length=3)] = Field(default_factory=lambda: [0.8, 0.5, 0.2])
    mild_size: Fraction = 0.5  # entry size multiplier in the mild tier
    hold_seconds: Annotated[SInt, Field(ge=0, le=86_400)] = 60  # a tier falls only after this long lower
    close_stages: Annotated[SInt, Field(ge=1, le=10)] = 3  # severe: the position is closed in this many parts
    close_stage_seconds: Annotated[float, Field(ge=0, le=600)] = 10.0  # ... this far apart

    @field_validator("levels")
    @classmethod
    def _descending(cls, levels: list[float]) -> list[float]:
        if not levels[0] > levels[1] > levels[2]:
            raise ValueError(f"liquidity levels must descend (mild > moderate > severe), got {levels}")
        return levels


class MaintenanceWindowConfig(StrictModel):
    start: dt.datetime  # ISO 8601 with a zone, e.g. "2026-12-10T02:00:00Z"
    end: dt.datetime
    title: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindowConfig:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("maintenance window times need a zone (add Z for UTC)")
        if self.end <= self.start:
            raise ValueError("a maintenance window must end after it starts")
        return self


class MaintenanceConfig(StrictModel):
    """Exchange maintenance (trader/risk/maintenance.py): no entries from lead_minutes before a window to its end."""

    lead_minutes: Annotated[SInt, Field(ge=0, le=24 * 60)] = 30
    poll_seconds: Annotated[SInt, Field(ge=5, le=3600)] = 60  # how often the exchange's schedule is read
    windows: list[MaintenanceWindowConfig] = Field(default_factory=list)  # announced by Binance, entered by hand


class ExecutionConfig(StrictModel):
    """The execution optimiser (trader/execution): market or post-only limit per order, slicing of large orders."""

    # A non-urgent entry rests as a post-only (GTX) limit when the spread is at least this wide (relative).
    maker_min_spread: Annotated[float, Field(ge=0, le=0.05)] = 0.0002
    slice_depth_share: Fraction = 0.25  # an order above this share of the visible same-side depth is split
    large_account_equity: Annotated[float, Field(gt=0)] = 10_000.0  # above this wallet (USDT) ...
    large_account_depth_share: Fraction = 0.05  # ... the share is this instead
    max_slices: Annotated[SInt, Field(ge=1, le=50)] = 8
    slice_wait_seconds: Annotated[float, Field(gt=0, le=300)] = 3.0  # a resting slice waits this long for a fill
    time_limit_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0  # then what is left goes at market


class BudgetConfig(StrictModel):
    """The total risk budget by trading frequency (risk-rules.md: the more often a strategy trades, the lower)."""

    trades_per_day: Positive = 6.0  # full budget up to this many entries a day, then × trades_per_day / rate
    floor: Fraction = 0.25  # ... but never below this share of max_total_risk


class AccountTier(StrictModel):
    above: Positive  # wallet (USDT) above which ...
    risk: Fraction  # ... that part of the wallet risks this share of risk_per_trade


class RegimeBudget(StrictModel):
    """Total budget multiplier per market regime of the pair (the analyzer's regime; strategies without one read
    ``unknown``)."""

    ranging: Fraction = 1.0
    trending: Fraction = 1.0
    breakout: Fraction = 0.75
    volatile: Fraction = 0.5
    unknown: Fraction = 1.0


class RiskConfig(StrictModel):
    """Defaults follow risk-rules.md; every number is a setting, not a constant. Read by trader/risk (limits.py maps
    it to the strategies' parameters, for the backtest and the live engine alike)."""

    risk_per_trade: Annotated[float, Field(gt=0, le=0.1)] = 0.02
    max_coin_risk: Fraction = 0.10
    max_total_risk: Fraction = 0.10
    atr_period: Annotated[SInt, Field(ge=2, le=500)] = 14
    atr_multiplier: Positive = 2.0
    # The stop distance is capped at stop_leverage_factor / leverage, which keeps it inside the liquidation distance.
    stop_leverage_factor: Annotated[float, Field(gt=0, lt=1)] = 0.8
    take_profit: list[TakeProfitTier] = Field(
        default_factory=lambda: [
            TakeProfitTier(move=0.008, close=0.3),
            TakeProfitTier(move=0.02, close=0.3),
            TakeProfitTier(move=0.05, close=0.4),
        ]
    )
    trailing_atr_multiplier: Positive = 1.5
    loss_streak: Annotated[SInt, Field(ge=1)] = 3
    max_drawdown: Fraction = 0.2
    correlation_max: Fraction = 0.8
    liquidation_warning: Fraction = 0.05  # warn when the mark is this close (fraction) to the liquidation price
    volatility_percentile: Fraction = 0.9
    volatility_window: Annotated[SInt, Field(ge=20, le=100_000)] = 500  # feed bars the ATR/price rank is taken over
    volatility_size: Fraction = 0.5  # size multiplier in a volatility spike (leverage unchanged)
    streak_size: Fraction = 0.5  # size multiplier from loss_streak losses in a row until a win
    drawdown_budget: Fraction = 0.5  # total budget multiplier while the wallet is more than max_drawdown below its peak
    correlation_hours: Annotated[SInt, Field(ge=12, le=24 * 90)] = 72  # rolling window of 1h returns
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    # Per-trade risk above 10,000 USDT falls in steps (marginal: each part of the wallet risks its tier's share).
    account_tiers: list[AccountTier] = Field(default_factory=lambda: [
        AccountTier(above=10_000, risk=0.75), AccountTier(above=50_000, risk=0.5), AccountTier(above=250_000, risk=0.3)])
    regime_budget: RegimeBudget = Field(default_factory=RegimeBudget)
    latency: LatencyTiers = Field(default_factory=LatencyTiers)
    liquidity: LiquidityConfig = Field(default_factory=LiquidityConfig)
    maintenance: MaintenanceConfig = Field(default_factory=MaintenanceConfig)

    @field_validator("take_profit")
    @classmethod
    def _tiers(cls, tiers: list[TakeProfitTier]) -> list[TakeProfitTier]:
        moves = [t.move for t in tiers]
        if moves != sorted(moves) or len(set(moves)) != len(moves):
            raise ValueError("take-profit moves must strictly ascend")
        total = sum(t.close for t in tiers)
        if tiers and abs(total - 1.0) > 1e-9:
            raise ValueError(f"take-profit close shares must add up to 1 (they add up to {total:g})")
        return tiers

    @field_validator("account_tiers")
    @classmethod
    def _account_tiers(cls, tiers: list[AccountTier]) -> list[AccountTier]:
        above = [t.above for t in tiers]
        if above != sorted(above) or len(set(above)) != len(above):
            raise ValueError("account tiers: 'above' must strictly ascend")
        if any(b.risk > a.risk for a, b in zip(tiers, tiers[1:], strict=False)):
            raise ValueError("account tiers: the risk share may not rise with the wallet")
        return tiers


class TelegramConfig(StrictModel):
    enabled: SBool = False
    token: SecretStr | None = None
    api_base_url: AnyHttpUrl | None = None  # unset means https://api.telegram.org
    chat_id: SInt | None = None  # where broadcast notifications go when a user has no private chat yet
    users: dict[int, Role] = Field(default_factory=dict)
    allow_groups: SBool = False
    language: Language = "en"
    report_time: dt.time = dt.time(8, 0)
    timezone: str = "UTC"

    @field_validator("users")
    @classmethod
    def _user_ids(cls, users: dict[int, Role]) -> dict[int, Role]:
        bad = [uid for uid in users if uid <= 0]
        if bad:
            raise ValueError(f"user ids are positive Telegram ids, got {bad}")
        return users

    @field_validator("report_time", mode="before")
    @classmethod
    def _hhmm(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return dt.datetime.strptime(value, "%H:%M").time()
            except ValueError:
                raise ValueError(f"report_time must be HH:MM, got {value!r}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from None
        return value

    @model_validator(mode="after")
    def _token_when_enabled(self) -> TelegramConfig:
        if self.enabled and not (self.token and self.token.get_secret_value()):
            raise ValueError("token: telegram.enabled is true but no token is set (TELEGRAM_TOKEN or `bsmart secrets set`)")
        return self


class MetricsConfig(StrictModel):
    enabled: SBool = True
    host: str = "127.0.0.1"
    port: Annotated[SInt, Field(ge=0, le=65535)] = 9108  # 0 picks a free port


class SimulatorConfig(StrictModel):
    """The exchange simulator that dry-run trades against when exchange.api_url is not set."""

    # "files": replay candles from data_dir (offline); "binance": mirror Binance's public market as it is now
    # (needs the network; no keys: orders still only reach the simulator).
    market: Literal["files", "binance"] = "files"
    speed: Annotated[float, Field(gt=0, le=10_000)] = 1.0  # replay speed for "files"; 1 = real time
    balance: Annotated[Decimal, Field(gt=0)] = Decimal("10000")
    data_dir: Path | None = None  # None: the dataset shipped with the package


_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


def _address(value: str) -> str:
    if not _ADDRESS.match(value):
        raise ValueError(f"{value!r} is not an e-mail address (name@example.com)")
    return value


Address = Annotated[str, AfterValidator(_address)]


class EmailConfig(StrictModel):
    """Alerts by e-mail beside Telegram: SMTP with STARTTLS and login."""

    enabled: SBool = False
    host: str | None = None
    port: Annotated[SInt, Field(ge=1, le=65535)] = 587
    starttls: SBool = True
    # A CA bundle or the server's own certificate, for a relay with a private CA; unset: the system's CAs.
    ca_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None  # better kept in the secret store: `bsmart secrets set smtp_password`
    sender: Address | None = None
    recipients: list[Address] = Field(default_factory=list)
    # Event kinds always sent by e-mail too (see /settings for the list).
    kinds: list[str] = Field(default_factory=lambda: ["liquidation_warning", "risk_action", "error", "health"])
    # While Telegram fails, every kind that would ring a phone goes by e-mail as well.
    fallback: SBool = True
    language: Language | None = None  # unset: telegram.language
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 20.0

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = [k for k in kinds if k not in EVENT_KINDS]
        if unknown:
            raise ValueError(f"unknown alert kinds {unknown} (known: {', '.join(EVENT_KINDS)})")
        return kinds

    @field_validator("ca_file")
    @classmethod
    def _ca_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{str(path)!r} is not a file")
        return path

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> EmailConfig:
        problems = []
        if self.enabled:
            if not self.host:
                problems.append("host: email.enabled is true but no SMTP host is set")
            if not self.sender:
                problems.append("sender: email.enabled is true but no sender address is set")
            if not self.recipients:
                problems.append("recipients: email.enabled is true but no recipient is set")
        if self.username and not (self.password and self.password.get_secret_value()):
            problems.append("password: email.username is set but no password (`bsmart secrets set smtp_password`)")
        if self.username and not self.starttls:
            problems.append("starttls: a login without STARTTLS would send the password in clear text")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class BackupConfig(StrictModel):
    """Daily copies of the ledger, the models and the config (`bsmart backup` makes one by hand)."""

    enabled: SBool = True  # the main job's daily backup
    time: dt.time = dt.time(3, 30)  # UTC
    keep: Annotated[SInt, Field(ge=1, le=1000)] = 7
    dir: Path | None = None  # unset: user_data_dir/backups

    @field_validator("time", mode="before")
    @classmethod
    def _hhmm(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return dt.datetime.strptime(value, "%H:%M").time()
            except ValueError:
                raise ValueError(f"time must be HH:MM (UTC), got {value!r}") from None
        return value


class HealthConfig(StrictModel):
    """The supervisor: checks every component, restarts what died, warns about resources."""

    interval_s: Annotated[SInt, Field(ge=5, le=3600)] = 30
    check_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0  # a check that takes longer counts as stuck
    max_restarts_per_hour: Annotated[SInt, Field(ge=0, le=60)] = 3  # per component; then alert and stop trying
    resource_warning: Fraction = 0.8  # CPU, RSS (share of RAM) or disk use above this warns
    stale_bars: Annotated[float, Field(ge=1.5, le=100)] = 3.0  # a pair's stream is stuck after this many bars
    benchmark_interval_s: Annotated[SInt, Field(ge=0, le=86_400)] = 3600  # self-benchmark; 0: never

    @field_validator("benchmark_interval_s")
    @classmethod
    def _benchmark_off_or_sane(cls, value: int) -> int:
        if 0 < value < 60:
            raise ValueError(f"benchmark_interval_s must be 0 (off) or at least 60, got {value}")
        return value


class MLConfig(StrictModel):
    """The ML models in the running system (trader/ml). Active models are used whenever the registry has one;
    scheduled retraining (``trader.ml.online.RetrainScheduler``, in a worker process) runs only when enabled."""

    retrain: SBool = False  # off by default: CI, the demo and a fresh install never train on their own
    light_every_s: Annotated[SInt, Field(ge=600, le=7 * 86_400)] = 3600  # light retrain (recent data)
    full_every_s: Annotated[SInt, Field(ge=86_400, le=90 * 86_400)] = 7 * 86_400  # full retrain from scratch
    check_every_s: Annotated[SInt, Field(ge=10, le=3600)] = 60  # how often the main job asks whether one is due


class Settings(StrictModel):
    exchange: ExchangeConfig = Field(default_factory=ExchangeConfig)
    margin_mode: Literal["cross"] = "cross"
    leverage: Annotated[SInt, Field(ge=1, le=BINANCE_MAX_LEVERAGE)] = 25
    max_leverage: Annotated[SInt, Field(ge=1, le=BINANCE_MAX_LEVERAGE)] = 50
    dry_run: SBool = True
    stake_currency: Literal["USDT"] = "USDT"
    # "unlimited": size each entry from the risk budget alone; a number also caps the margin of one entry.
    stake_amount: Annotated[Decimal | str, PlainValidator(_stake_amount)] = "unlimited"
    # In order of priority: live, the managed strategies decide a pair's candle once the pairs before it are in.
    pair_whitelist: Annotated[list[Pair], Field(min_length=1)] = Field(
        default_factory=lambda: ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    )
    timeframes: Annotated[list[Timeframe], Field(min_length=1)] = Field(default_factory=lambda: ["5m", "1h"])
    max_open_trades: Annotated[SInt, Field(ge=1, le=100)] = 3
    risk: RiskConfig = Field(default_factory=RiskConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    simulator: SimulatorConfig = Field(default_factory=SimulatorConfig)
    email: EmailConfig = Field(default_factory=EmailConfig)
    backup: BackupConfig = Field(default_factory=BackupConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    ml: MLConfig = Field(default_factory=MLConfig)
    strategy: str = "rsi_bollinger"
    db_url: str | None = None  # unset: SQLite in user_data_dir
    user_data_dir: Path = Path("user_data")
    log_level: LogLevel = "INFO"

    @field_validator("pair_whitelist")
    @classmethod
    def _unique_pairs(cls, pairs: list[str]) -> list[str]:
        twice = sorted({p for p in pairs if pairs.count(p) > 1})
        if twice:
            raise ValueError(f"pairs listed twice: {', '.join(twice)}")
        return pairs

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, name: str) -> str:
        from trader.strategy.reference import STRATEGIES  # lazy: TA-Lib and Backtrader load only when validating

        if name not in STRATEGIES:
            raise ValueError(f"unknown strategy {name!r} (known: {', '.join(sorted(STRATEGIES))})")
        return name

    @field_validator("timeframes")
    @classmethod
    def _unique_timeframes(cls, tfs: list[str]) -> list[str]:
        if len(set(tfs)) != len(tfs):
            raise ValueError("timeframes are listed twice")
        return tfs

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        # One line per problem: the loader prints each line of this message separately.
        problems = []
        if self.leverage > self.max_leverage:
            problems.append(f"leverage: {self.leverage} is above max_leverage {self.max_leverage}")
        if not self.dry_run and not self.exchange.has_credentials:
            problems.append(
                "exchange.key: dry_run is false but exchange.key/exchange.secret are missing "
                "(BINANCE_API_KEY/BINANCE_API_SECRET or `bsmart secrets set`)"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # Derived locations, all under user_data_dir so one volume holds a deployment's state.
    @property
    def resolved_db_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.user_data_dir / 'tradesv3.sqlite').resolve()}"

    @property
    def logs_dir(self) -> Path:
        return self.user_data_dir / "logs"

    @property
    def data_dir(self) -> Path:
        return self.user_data_dir / "data" / "binance" / "futures"

    @property
    def backups_dir(self) -> Path:
        return self.backup.dir or self.user_data_dir / "backups"

    @property
    def models_dir(self) -> Path:
        return self.user_data_dir / "models"

    def secrets(self) -> list[str]:
        """Every configured secret value, for redaction."""
        found = [self.exchange.key, self.exchange.secret, self.telegram.token, self.email.password]
        return [s.get_secret_value() for s in found if s is not None and s.get_secret_value()]
