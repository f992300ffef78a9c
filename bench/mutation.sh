#!/usr/bin/env bash
# Mutation testing of SCoFT's core: every mutant of finetune/{losses,step,sampler,data}.py is run
# against tests/test_scoft_{math,golden,data}.py ([tool.mutmut] in pyproject.toml); a mutant the
# tests do not kill is a formula they would let drift.
#
#   pip install 'mutmut>=3.8' && bash bench/mutation.sh     # prints killed / survived counts
#
# Surviving mutants that cannot change behaviour (equivalent mutants) are listed with the reason
# in bench/mutation_equivalent.txt; `mutmut show NAME` prints any mutant's diff.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
mutmut run --max-children "${JOBS:-2}" || true   # exits non-zero while mutants survive
mutmut results --all true 2>/dev/null | awk '{print $NF}' | sort | uniq -c
