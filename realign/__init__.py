"""The realignment engine: word pairs, losses, freeze strategies and the training loop.

Modules: :mod:`realign.pairs` (+ :mod:`realign.aligners`), :mod:`realign.losses`,
:mod:`realign.freeze`, :mod:`realign.config`, :mod:`realign.train`. Import them directly;
this package file stays light so that the CLI starts fast.
"""
