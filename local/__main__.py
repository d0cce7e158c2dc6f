"""``python -m local``: the ``cifar100`` command without the installed script. The import
roots (functions/, training/) go on the path the same way (``local.console``)."""

import sys

from local.console import add_import_roots, interrupted_exit_code

add_import_roots()

try:
    from local.cli import main

    code = main(prog="python -m local")
except KeyboardInterrupt:  # Ctrl-C before the command took over its own signal handling
    code = interrupted_exit_code(sys.argv[1:])
sys.exit(code)
