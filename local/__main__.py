"""``python -m local``: Lambda code (functions/) and the training package (training/) are
import roots in their runtimes; put them on the path the same way here."""

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
for _root in ("training", "functions"):
    if str(_REPO / _root) not in sys.path:
        sys.path.insert(0, str(_REPO / _root))

from local.cli import main  # noqa: E402

sys.exit(main())
