#!/usr/bin/env bash
# The prepared device check (docs/gpu.md), run from the repository root on a lent GPU machine:
#
#   OUT=$OUT bash sampling/benchmarks/device_check.sh
#
# It installs the kit's wheels (qgfd-bench kit, built on a machine with a package registry) offline into a virtual
# environment that also sees the machine's own Python packages, installs the project there without dependencies,
# and runs the gpu suite within BUDGET seconds (default 480), writing into $OUT:
#   gpu.json        the suite's rows (rewritten after every part, so a run cut short keeps what finished)
#   gpu-table.txt   the printed table and the exit status
#   samples.npz     the CIFAR-10 samples as uint8, to score here with the FID network that cannot travel
# Settings: PYTHON (python3), KIT (kit), BUDGET (480), CONFIGS (all), TINY=1 (the same code on the CPU at tiny
# sizes: the rehearsal in tests/sampling/benchmarks/test_device_kit.py), REFERENCE (CIFAR-10 images or statistics).
set -euo pipefail
PYTHON=${PYTHON:-python3}
KIT=${KIT:-kit}
OUT=${OUT:?set OUT to the folder that comes back}
BUDGET=${BUDGET:-480}
mkdir -p "$OUT"
VENV=$(mktemp -d)/venv
started=$(date +%s)

# a virtual environment that sees the parent Python's packages (after its own), without a registry
"$PYTHON" -m venv --without-pip "$VENV"
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$PYTHON" -c 'import site, sys; print("\n".join(p for p in site.getsitepackages() + [site.getusersitepackages()]))' \
    > "$site/parent-packages.pth"
wheels=$(find "$KIT" -maxdepth 1 -name '*.whl' 2>/dev/null | sort || true)
if [ -n "$wheels" ]; then
    "$VENV/bin/python" -m pip install --quiet --no-index --no-deps $wheels
fi
"$VENV/bin/python" -m pip install --quiet --no-index --no-deps --no-build-isolation -e .
echo "environment ready in $(( $(date +%s) - started )) s ($(echo "$wheels" | grep -c . || true) wheels)" | tee "$OUT/gpu-table.txt"

args=(gpu --out "$OUT/gpu.json" --samples-npz "$OUT/samples.npz")
[ "${TINY:-0}" = 1 ] && args+=(--tiny)
[ -n "${CONFIGS:-}" ] && args+=(--configs "$CONFIGS")
[ -n "${REFERENCE:-}" ] && args+=(--reference "$REFERENCE")
status=0
timeout "$BUDGET" "$VENV/bin/qgfd-bench" "${args[@]}" >> "$OUT/gpu-table.txt" 2>&1 || status=$?
echo "qgfd-bench gpu exit status $status after $(( $(date +%s) - started )) s (124: cut at $BUDGET s)" | tee -a "$OUT/gpu-table.txt"
exit "$status"
