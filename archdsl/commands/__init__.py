"""One module per ``archdsl`` subcommand; each exposes ``register(subparsers)``."""
