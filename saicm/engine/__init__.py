"""A coding engine that runs the shipped models without PyTorch or CompressAI: transforms in ONNX Runtime,
exact integer hyper-synthesis, constriction ANS.

- :mod:`saicm.engine.hypernet`: the hyper-synthesis as an exact integer network (the coder tables are the
  same on every engine, CPU and thread count);
- :mod:`saicm.engine.model`: a model file's gains, tables and latent coding (numpy);
- :mod:`saicm.engine.context`: a context model's latent coding, its context networks as exact integer networks;
- :mod:`saicm.engine.onnx_export` / :mod:`saicm.engine.runtime`: the float transforms as ONNX graphs built
  from the file's weights, run by onnxruntime (or OpenVINO, or the PyTorch modules: same files, any way);
- :mod:`saicm.engine.codec`: image ⇄ portable stream (``.saicm`` format 3).
"""

#: which coder writes a stream (``saicm compress --engine``): ``auto`` (the portable engine, format 3, with
#: onnxruntime, for the models it supports; CompressAI's coder, formats 1/2, for the others), ``onnx`` /
#: ``torch`` / ``openvino`` / ``openvino-bf16`` (the portable engine with that transform back-end; OpenVINO is
#: optional, ``saicm[openvino]``), ``compressai`` (formats 1/2 from the PyTorch model, as saicm 0.3 wrote them)
ENGINES = ("auto", "onnx", "torch", "openvino", "openvino-bf16", "compressai")
#: the engines that code and decode portable streams (format 3): all but ``compressai``
PORTABLE_ENGINES = ENGINES[:-1]
