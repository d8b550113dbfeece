"""Screens of the inspector: main (tabs), tree, help, flag dialog, error."""
