"""Telegram front end and the `bsmart` command line: the composition root."""
