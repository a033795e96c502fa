from drumdiff.cli import main

raise SystemExit(main())
