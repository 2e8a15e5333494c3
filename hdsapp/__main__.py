from hdsapp.cli import main

raise SystemExit(main())
