"""`python -m polars_gemini.cli`: the `polars-gemini` command."""

import sys

from polars_gemini.cli.main import main

sys.exit(main())
