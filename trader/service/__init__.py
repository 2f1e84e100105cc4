"""The trading service: the one façade every front end (bot, CLI, tests) calls."""
