#!/bin/bash
# Slurm job for a noahtibet gridded run.  Adapt the #SBATCH lines to the site.
# Submit:  sbatch mpi/slurm_job.sh config.toml
# Resume after a time-out or a failure: resubmit with RESUME=1 (restart files are
# written at the end of every spin-up cycle and every simulated year).
#SBATCH --job-name=noahtibet
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=64          # one rank per core: the kernel is single-threaded
#SBATCH --cpus-per-task=1
#SBATCH --mem-per-cpu=2G              # a rank holds only its cells (about 1 MB per cell per spin-up year cached)
#SBATCH --time=24:00:00
#SBATCH --output=noahtibet_%j.log
set -euo pipefail
CONFIG=${1:?usage: sbatch mpi/slurm_job.sh CONFIG}
# keep numerical libraries single-threaded: parallelism comes from MPI ranks
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
# module load python mpi   # site-specific; mpi4py must be built against the site MPI
EXTRA=""
if [ "${RESUME:-0}" = "1" ]; then EXTRA="--resume"; fi
srun python "$(dirname "$0")/run_noahtibet.py" "$CONFIG" $EXTRA
