from fiber_endpoints.cli import main

raise SystemExit(main())
