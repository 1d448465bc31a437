"""The bundled Triton launcher: the embedded CPU server, the model repository and the GPU deployment path.

Installed as ``trtclient.server``. The embedded server is a real ``tritonserver`` (from the
nvidia-pytriton wheel) serving TRT-LLM's five ``inflight_batcher_llm`` models with a CPU engine in the
``tensorrt_llm`` slot.
"""
