"""The old name of `pgjax.results.random_policy` (pgjax 0.2), kept for code that imports it."""

from pgjax.results.random_policy import *  # noqa: F403
from pgjax.results.random_policy import random_policy_return  # noqa: F401
