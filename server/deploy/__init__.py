"""The GPU deployment path: build a TensorRT-LLM engine, render the model repository, start Triton.

Modules, one step each:

* :mod:`.versions` — which flag spellings an installed ``tensorrt_llm`` release understands;
* :mod:`.spec` — the declarative build spec (a file or flags);
* :mod:`.serving_properties` — LMI ``serving.properties`` options mapped onto that spec;
* :mod:`.build` — the ``convert_checkpoint.py`` and ``trtllm-build`` commands, and running them;
* :mod:`.launch` — the ``tritonserver`` / ``mpirun`` command behind ``trtclient serve --engine-dir``.

Nothing here imports ``tensorrt_llm``: its version is read from the installed package metadata, and
the GPU tools run as subprocesses, so ``--dry-run`` works on any machine.
"""
