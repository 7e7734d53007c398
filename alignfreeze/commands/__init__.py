"""Sub-commands of the CLI; each module defines ``register(subparsers)``."""
