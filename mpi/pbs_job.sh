#!/bin/bash
# PBS Pro / Torque job for a noahtibet gridded run.  Adapt the #PBS lines to the site.
# Submit:  qsub -v CONFIG=config.toml mpi/pbs_job.sh     (add RESUME=1 to continue)
#PBS -N noahtibet
#PBS -l select=4:ncpus=64:mpiprocs=64:mem=128gb
#PBS -l walltime=24:00:00
#PBS -j oe
set -euo pipefail
cd "${PBS_O_WORKDIR:-.}"
: "${CONFIG:?pass -v CONFIG=path/to/config.toml}"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
NP=$(wc -l < "$PBS_NODEFILE")
EXTRA=""
if [ "${RESUME:-0}" = "1" ]; then EXTRA="--resume"; fi
mpiexec -n "$NP" python mpi/run_noahtibet.py "$CONFIG" $EXTRA
