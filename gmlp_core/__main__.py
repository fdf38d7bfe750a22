import sys

from gmlp_core.cli import main

sys.exit(main())
