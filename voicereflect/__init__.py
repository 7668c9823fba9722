"""voicereflect: reflect aloud between therapy sessions, locally and offline."""

import os

# numpy's OpenBLAS starts a busy-waiting thread per core. Next to the threads of llama.cpp and
# CTranslate2 on a 2-core machine, encoding the safety exemplars at startup took 41.6 s instead
# of 5.2 s with one thread (measured here). Set before numpy is first imported; a value the
# person chose is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _fewer_malloc_arenas() -> None:
    """glibc gives each thread that allocates its own heap arena; with the threads of
    llama.cpp, CTranslate2, onnxruntime and PortAudio that left ~50 MB more resident at
    startup (measured here). Two arenas are plenty; other C libraries are left alone."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name and "MALLOC_ARENA_MAX" not in os.environ:
        try:
            ctypes.CDLL(name).mallopt(-8, 2)  # M_ARENA_MAX
        except (OSError, AttributeError):
            pass  # not glibc


_fewer_malloc_arenas()

__version__ = "0.1.0"
