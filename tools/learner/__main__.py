"""`python -m tools.learner COMMAND`: what the check and watch sessions run."""

import os
import sys
from pathlib import Path

from tools.learner.cli import Workshop, main

ROOT = Path(__file__).resolve().parents[2]

if __name__ == "__main__":
    # The servers' URLs come in the environment, as the step's own session passes them.
    sys.exit(main(sys.argv[1:], Workshop(ROOT, python=sys.executable, env=dict(os.environ))))
