"""Runs the whole suite on one machine: `shoal up`, `shoal down`, `shoal status`."""
