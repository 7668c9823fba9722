"""voicereflect: reflect aloud between therapy sessions, locally and offline."""

__version__ = "0.1.0"
