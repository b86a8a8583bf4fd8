"""Settings machinery: how a setting is declared, read from the environment and checked.

The declarations themselves are in services/common/config.py.
"""
