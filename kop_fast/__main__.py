from kop_fast.cli import main

raise SystemExit(main())
