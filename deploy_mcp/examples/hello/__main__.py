"""Entry point for ``python -m examples.hello`` and ``python examples/hello``: runs server.py as a script."""

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).with_name("server.py")), run_name="__main__")
