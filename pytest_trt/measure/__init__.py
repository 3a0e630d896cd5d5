"""Timing an engine: the adaptive trtexec-style timer, latency statistics, the real-time video loop.

Drives engines through the protocol in ``engines``; judges nothing.
"""
