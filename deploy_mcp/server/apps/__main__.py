"""Write the rollout view of a recorded deployment as a page that needs no host (the docs' examples).

    python -m deploy_mcp.server.apps docs/public/rollout/canary-rollback.json

reads a `deployment_status` result (its structuredContent, as JSON) and writes the page beside it, same name,
``.html``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from deploy_mcp.server.apps import static_page


def main(arguments: list[str]) -> int:
    if not arguments:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for name in arguments:
        source = Path(name)
        view = json.loads(source.read_text(encoding="utf-8"))
        target = source.with_suffix(".html")
        target.write_text(static_page(view), encoding="utf-8")
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
