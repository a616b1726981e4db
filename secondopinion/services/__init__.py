"""Business rules. Nothing here imports NiceGUI: pages and HTTP routes call these functions."""
