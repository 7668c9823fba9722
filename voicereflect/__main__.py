"""Entry point for ``python -m voicereflect``."""

from voicereflect.cli import main

main()
