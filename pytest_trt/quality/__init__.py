"""Judging outputs: metrics, the gates, same-recipe references and the verdict of one configuration.

Uses ``engines`` for the references' recipes; knows nothing of timing or stored runs.
"""
