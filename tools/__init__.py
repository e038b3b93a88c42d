"""Development tools: benchmarks, soak tests, screenshots, the demo video and the hard test scenes.

Run from the project folder as ``python -m tools.NAME``. Not part of the wheel: nothing here goes to a Pi,
and ``device`` never imports it (``host`` is beneath it: the tools render pages with ``host.synthetic``).
"""
