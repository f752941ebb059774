#!/usr/bin/env bash
# Pack the serving stack (PyTriton with its tritonserver, perf_analyzer, their compiled dependencies)
# for a machine without network whose Python may differ from this one's (e.g. a GPU machine with
# Python 3.12 and torch/numpy already installed). Needs pip and network here; installs nothing here.
#
#   bash bench/serving_bundle.sh [PYTHON_VERSION (default 3.12)] [OUT (default serving_bundle.tar.xz)]
#
# On the target, in the repository root:
#   tar -xJf serving_bundle.tar.xz                      # makes .serving_site/
#   export PYTHONPATH=$PWD/.serving_site:$PWD PATH=$PWD/.serving_site/bin:$PATH   # absolute: the
#   python -m bench.serving                             # Triton Python-backend stub inherits them
#
# Installed with --no-deps over the target's own torch, rich, typing_extensions; PyTriton needs
# numpy < 2 in the server's process (WITH_NUMPY=1 adds numpy 1.26.4; see examples/README.md).
set -euo pipefail
PYVER=${1:-3.12}
OUT=$(realpath -m "${2:-serving_bundle.tar.xz}")
PY=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
site=$work/.serving_site

plat=()
for p in manylinux_2_35_x86_64 manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux_2_5_x86_64 manylinux1_x86_64 any; do
  plat+=(--platform "$p")
done
# The versions seen working here (PyTriton 0.7.0 bundles Triton Inference Server 2.51;
# tritonclient 2.51.0 is the last wheel with the perf_analyzer binary).
"$PY" -m pip install -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version "$PYVER" "${plat[@]}" --target "$site" \
  nvidia-pytriton==0.7.0 tritonclient==2.51.0 \
  pyzmq==27.3.0 grpcio==1.85.3 protobuf==4.25.9 python-rapidjson==1.25 urllib3==2.8.0 \
  sh==2.4.0 typer==0.29.2 click==8.5.1 shellingham==1.5.4 typing_inspect==0.9.0 mypy_extensions==1.2.0 \
  wrapt==2.5.2 importlib_metadata==10.2.0 zipp==4.1.2 \
  gevent==26.9.0 greenlet==3.5.6 zope.event==6.2 zope.interface==8.7 geventhttpclient==2.6.1 \
  brotli==1.2.1 certifi

# PyTriton's server answers with empty outputs under numpy 2 (seen with 2.4): WITH_NUMPY=1 ships a
# numpy 1.x for the target, which then comes first on PYTHONPATH.
if [ "${WITH_NUMPY:-0}" = "1" ]; then
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$PYVER" "${plat[@]}" --target "$site" numpy==1.26.4
fi

# Trim what the target cannot use: perf_client is a byte-identical copy of perf_analyzer, and the
# Python-backend stubs for other Python versions.
rm -f "$site/bin/perf_client"
for d in "$site"/pytriton/tritonserver/python_backend_stubs/*; do
  [ "$(basename "$d")" = "$PYVER" ] || rm -rf "$d"
done
# Outside a site-packages folder PyTriton takes itself for an editable install and looks for the
# tritonserver libraries here instead of ../nvidia_pytriton.libs.
ln -sfn ../../nvidia_pytriton.libs "$site/pytriton/tritonserver/external_libs"

tar -C "$work" -cf - .serving_site | xz -6 -T0 > "$OUT"
echo "serving bundle for Python $PYVER: $OUT ($(du -h "$OUT" | cut -f1))" >&2
