"""`python -m streambill.cli ...`: the same as the `streambill` command."""

import sys

from streambill.cli.main import main

sys.exit(main())
