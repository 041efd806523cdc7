from mobilenetv2.cli import main

raise SystemExit(main())
