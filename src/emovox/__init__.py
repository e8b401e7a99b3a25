"""emovox: speech emotion recognition that listens continuously and decides early."""

__version__ = "0.1.0"
