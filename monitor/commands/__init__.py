"""One module per `neurofusion` subcommand.

Each module defines ``register(subparsers) -> None``: it adds its parser and sets ``handler=run`` through
``parser.set_defaults``. Keep these thin: parse, call the package that does the work, report.
"""
