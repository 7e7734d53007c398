"""alignfreeze: realign multilingual models with freezing, probe them layer by layer and
measure what realignment did to every layer.

The top floor: CLI (``alignfreeze``), pipeline and facade. ``import alignfreeze as af``.
"""

__version__ = "0.1.0"
