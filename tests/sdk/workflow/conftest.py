"""Pytest setup for the workflow tests.

The shared helpers live in ``wf_support`` next to this file; pytest's default ``prepend``
import mode puts this folder on ``sys.path`` (there is no ``__init__.py``), so test modules
import it by name.
"""
