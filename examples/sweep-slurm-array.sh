#!/usr/bin/env bash
# A sweep's shards as a Slurm job array: task I runs shard I of 8.
#
# Before: `metaexec sweep dscr_stress.py … --prepare job` on a machine with the database
# (the nodes then need no database and no credentials: they answer from job/snapshot.json).
# Submit: `sbatch examples/sweep-slurm-array.sh`
# After: `metaexec sweep merge parts/part-* --out results`
#SBATCH --job-name=metaexec-sweep
#SBATCH --array=0-7
#SBATCH --cpus-per-task=2
#SBATCH --mem=2G
#SBATCH --output=parts/shard-%a.log
set -euo pipefail
# --shard auto reads SLURM_ARRAY_TASK_ID (less SLURM_ARRAY_TASK_MIN) and SLURM_ARRAY_TASK_COUNT.
part="parts/part-${SLURM_ARRAY_TASK_ID}"
rm -rf "$part"   # a requeued task starts its part again
metaexec sweep job/dscr_stress.py --plan job/plan.json --snapshot job/snapshot.json \
    --shard auto --out "$part" --workers "${SLURM_CPUS_PER_TASK:-1}"
