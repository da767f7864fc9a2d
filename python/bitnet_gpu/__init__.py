"""bitnet_gpu: Python bindings of bitnet-gpu, the BitNet b1.58 inference runtime.

    from bitnet_gpu import Engine
    with Engine("models/ggml-model-i2_s.gguf") as engine:
        print(engine.generate("2+2=", max_tokens=8, greedy=True).text)

The package is a thin layer over the C library (libbitnet.so, shipped inside
it); BatchEngine runs many generations at once (continuous batching);
bitnet_gpu.serve is a Ray Serve deployment with OpenAI-compatible routes.
"""
from ._native import lib as _lib
from .batch import BatchEngine, BatchStream
from .engine import BitnetError, Completion, Engine, Logprob, ModelInfo, Piece, Stream, Timings, default_model_path

__version__ = _lib.bn_version().decode()  # the wheel is built with the library's version

__all__ = ["BatchEngine", "BatchStream", "BitnetError", "Completion", "Engine", "Logprob", "ModelInfo", "Piece",
           "Stream", "Timings", "__version__", "default_model_path"]
