#!/usr/bin/env bash
# Set everything up and run the main job.  Until the gridded demo domain exists
# this is a point run of the bundled Tanggula forcing (2007-2010, 20 layers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p output
noahtibet point validation/reference/tanggula/forcing_daily_2007_2010.dat \
  --output output/tanggula_point.nc
python3 -c "
import xarray as xr
ds = xr.open_dataset('output/tanggula_point.nc')
t = ds.soil_temperature - 273.15
print('Tanggula point run', str(ds.time.values[0])[:10], '..', str(ds.time.values[-1])[:10])
print('layer  depth_m  mean_C   min_C   max_C')
for k in range(ds.sizes['layer']):
    print(f'{k+1:5d} {float(ds.layer_depth[k]):8.3f} {float(t[:, k].mean()):7.2f} '
          f'{float(t[:, k].min()):7.2f} {float(t[:, k].max()):7.2f}')
"
