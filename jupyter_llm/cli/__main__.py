"""Run ``python -m jupyter_llm.cli``."""

import sys

from . import main

sys.exit(main())
