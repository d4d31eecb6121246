"""`python -m testbed.crash --out DIR [--kills 20 --seed 0]`: see testbed.crash.options."""

import sys

from testbed.crash.options import main

sys.exit(main())
