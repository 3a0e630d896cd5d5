"""Repository-level conftest: hypothesis profiles for the plugin's own tests.

The plugin itself is loaded through its ``pytest11`` entry point (``pip install -e .``), never from
here, so benchmarks behave the same in this checkout as in a user's project.
"""

import os

from hypothesis import settings

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
