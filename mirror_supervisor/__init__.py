"""mirror-supervisor: keeps a redundant copy of IP-camera recordings on a second volume."""

__version__ = "0.1.0"
