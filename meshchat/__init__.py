"""meshchat: an end-to-end encrypted mesh messenger over Bluetooth LE and the LAN."""

__version__ = "0.1.0"
__all__ = ["__version__"]
