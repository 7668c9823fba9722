"""voicereflect: reflect aloud between therapy sessions, locally and offline."""

import os

# numpy's OpenBLAS starts a busy-waiting thread per core. Next to the threads of llama.cpp and
# CTranslate2 on a 2-core machine, encoding the safety exemplars at startup took 41.6 s instead
# of 5.2 s with one thread (measured here). Set before numpy is first imported; a value the
# person chose is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
