from mailesc.cli import main

raise SystemExit(main())
