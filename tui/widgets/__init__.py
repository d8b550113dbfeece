"""Widgets of the inspector, one module each."""
