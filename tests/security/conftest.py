"""The hostile-input suite (issue 9). Its helper modules (hostile_*.py) import by name, package or not."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
