from deploy_mcp.cli import main

raise SystemExit(main())
