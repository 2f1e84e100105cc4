"""The embedded live engine: the same Backtrader strategy class as the backtest, against the exchange client.

- ``host``: ``EngineHost``, the engine's own thread and asyncio loop (``submit``/``call``/``wrap`` from elsewhere).
- ``feed``: ``LiveFeed``, a Backtrader live feed of closed candles (higher timeframes built from 1m, history
  preloaded, indicator lines from the strategy's causal ``compute_indicators``).
- ``desk``: ``OrderDesk``, the exchange side of the broker on the engine loop: orders, fills, the stop placed
  first after every entry fill, stops moved new-before-old, ``reconcile_stops``, the candle gate, events.
- ``orders``: the vocabulary between them: ``OrderSpec`` (Backtrader → desk), fill/status/wallet notes (desk →
  Backtrader), ``Tracked`` orders, ``DeskOptions``.
- ``positions``: ``PositionBook``, the position mirror and each trade's running numbers.
- ``broker``: ``LiveBroker``, the Backtrader ``BrokerBase`` strategies talk to (maps orders, applies fills).
- ``ledger``: Trade/Order/Fill rows and deterministic client-id sequences.
- ``store``: ``LiveStore``, history over REST and the candle/account streams wired to feeds and desk.
- ``engine``: ``LiveEngine``, the control surface (start/stop/pause/resume/force/reconcile/status).
"""
