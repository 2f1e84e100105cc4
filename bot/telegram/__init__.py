"""The Telegram front end: python-telegram-bot handlers in front of the TradingService.

Module map: registry (every command declared once), permissions (the gate), confirm (Confirm/Cancel with
single-use nonces), handlers/* (commands by topic), formatting (views → text), notifier (engine events →
messages), report (the daily report and its jobs), store (per-user settings and role grants), app (wiring).
"""
