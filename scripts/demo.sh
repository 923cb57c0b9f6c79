#!/usr/bin/env bash
# Set everything up and run the main job on the built-in SYNTHETIC demo domain:
# spin-up, transient run 1979-2018, 39 yearly frozen-ground GeoTIFFs (1980-2018) and
# the netCDF product, on all cores with MPI.  Output: ./noahtibet_demo/
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
NP=$(nproc 2>/dev/null || echo 1)
if [ "$NP" -gt 1 ] && command -v mpiexec >/dev/null 2>&1; then
  mpiexec -n "$NP" noahtibet demo --out noahtibet_demo --mpi on "$@"
else
  noahtibet demo --out noahtibet_demo "$@"
fi
ls noahtibet_demo/products | head -3
echo "... $(ls noahtibet_demo/products/*.tif | wc -l) GeoTIFFs in noahtibet_demo/products"
