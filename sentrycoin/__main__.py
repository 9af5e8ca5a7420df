"""`python -m sentrycoin ...`: the same command line as `sentrycoin ...`."""

import sys

from sentrycoin.cli import main

if __name__ == "__main__":
    sys.exit(main())
