"""Repository-level conftest, deliberately empty of imports.

Every benchmark process started from this checkout loads this file before its first case, so anything
imported here is start-up time on every GPU of ``pytest-trt run`` (the plugin's own tests set up
hypothesis in ``tests/conftest.py``).  The plugin itself is loaded through its ``pytest11`` entry
point (``pip install -e .``), never from here, so benchmarks behave the same in this checkout as in a
user's project.
"""
