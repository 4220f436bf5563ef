import sys

from .commands.lightning import main

sys.exit(main())
