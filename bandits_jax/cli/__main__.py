"""``python -m bandits_jax.cli``: the ``bandits-jax`` command."""

import sys

from bandits_jax.cli import main

sys.exit(main())
