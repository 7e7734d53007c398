"""Floor 1 of alignfreeze: data readers, the architecture table, model loading, pooling,
word features, configs and manifests. Imports none of the other packages."""

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
