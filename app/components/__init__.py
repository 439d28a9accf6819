"""Widgets and helpers shared by the pages: persisted state, cached loads, the training registry."""
