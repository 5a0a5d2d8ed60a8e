from hydro.cli import main

raise SystemExit(main())
