"""Command handlers by topic. Each module exposes COMMANDS; registry.py's Registry collects them."""

from __future__ import annotations

from bot.telegram.registry import Command, Registry


def all_commands() -> list[Command]:
    from bot.telegram.handlers import admin, backtest, control, execution, general, hyperopt, info, models, risk

    return [*general.COMMANDS, *info.COMMANDS, *risk.COMMANDS, *execution.COMMANDS, *control.COMMANDS, *backtest.COMMANDS, *hyperopt.COMMANDS,
            *models.COMMANDS, *admin.COMMANDS]


def default_registry() -> Registry:
    return Registry(all_commands())
