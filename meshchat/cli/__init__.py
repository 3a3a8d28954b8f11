"""The command-line face: ``meshchat <command>``."""
