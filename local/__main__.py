"""``python -m local``: the ``cifar100`` command without the installed script. The import
roots (functions/, training/) go on the path the same way (``local.console``)."""

import sys

from local.console import add_import_roots

add_import_roots()

from local.cli import main  # noqa: E402

sys.exit(main(prog="python -m local"))
