from fingertui.cli import main

raise SystemExit(main())
