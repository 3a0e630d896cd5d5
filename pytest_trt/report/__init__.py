"""``pytest-trt report``: HTML and Markdown tables and figures from stored runs."""
