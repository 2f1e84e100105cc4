"""One module per ``bsmart`` subcommand; each exposes ``register(subparsers)``."""
