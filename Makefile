# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
DATA ?= ../shared/data
OUT ?= demo_out
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SALTON := $(DATA)/salton_sea_2020

.PHONY: install test test-slow demo data bench peers benchmark benchmark-quick scaling clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall only when the package metadata or the pins change.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,scale]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not gpu"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m "slow"

# The whole chain on the Salton Sea days: check the data (compare), calibrate the generator to the
# real picks, generate a day of synthetic picks, train the model (a finished model is reused),
# then self-train: round 0 associates the real picks and compares them with SCSN, round 1
# harvests confident events, recalibrates, fine-tunes and re-associates; the final table ends it.
demo: $(STAMP) data
	$(BIN)/genie compare \
		--catalog $(SALTON)/catalog_scsn.csv \
		--reference $(SALTON)/catalog_scsn.csv \
		--stations $(SALTON)/stations.csv \
		--picks $(SALTON)/picks_phasenet.csv \
		--out $(OUT)/compare
	$(BIN)/genie calibrate \
		--stations $(SALTON)/stations.csv \
		--picks $(SALTON)/picks_phasenet.csv \
		--catalog $(SALTON)/catalog_scsn.csv \
		--out $(OUT)/calibration
	$(BIN)/genie synth \
		--stations $(SALTON)/stations.csv \
		--params $(OUT)/calibration/generator_params.json \
		--reference-catalog $(SALTON)/catalog_scsn.csv \
		--hours 24 --out $(OUT)/synth
	$(BIN)/genie train \
		--stations $(SALTON)/stations.csv \
		--generator-params $(OUT)/calibration/generator_params.json \
		--config small --out $(OUT)/model
	$(BIN)/genie self-train \
		--picks $(SALTON)/picks_phasenet.csv \
		--stations $(SALTON)/stations.csv \
		--reference $(SALTON)/catalog_scsn.csv \
		--model $(OUT)/model \
		--rounds 1 --finetune-steps 500 --out $(OUT)/selftrain

# The demo's data: two days of real PhaseNet picks and the SCSN catalog of the 2020 Westmorland
# swarm, from the GaMMA project's real-data example.
data:
	@test -f $(SALTON)/picks_phasenet.csv || { \
		echo "make demo: no Salton Sea data in $(SALTON)/ (picks_phasenet.csv, stations.csv, catalog_scsn.csv)."; \
		echo "They are the GaMMA project's real-data example (https://github.com/AI4EPS/GaMMA, MIT licence):"; \
		echo "two days of PhaseNet picks on 16 SCSN stations and the SCSN catalog, 2020-10-01 to 2020-10-02."; \
		echo "Put them in DIR/salton_sea_2020/ and run: make demo DATA=DIR"; \
		exit 2; }

# The Salton Sea benchmark against PyOcto and GaMMA (after make demo). The peers are installed
# without their dependency pins: pyocto 0.2.2 asks numpy<2 on Python 3.11 and gmma 1.2.17
# scikit-learn==1.7, while scikit-optimize needs the tested scikit-learn 1.9; both run with
# the pinned numpy 2.4 and scikit-learn 1.9.
peers: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps pyocto==0.2.2 gmma==1.2.17 numba==0.68.1 llvmlite==0.50.0

bench: peers
	$(BIN)/python scripts/bench_associate.py --model $(OUT)/model --data $(DATA)
	$(BIN)/python scripts/bench_salton.py --model $(OUT)/model --data $(DATA) --out $(OUT)/bench

# genie, PyOcto and GaMMA on the benchmark scenarios (scripts/benchmark.py): the quick subset
# (under 20 minutes on 2 CPU threads), or every scenario and the real Salton Sea days (after make
# demo) into docs/benchmarks.md.
benchmark-quick: peers
	$(BIN)/python scripts/benchmark.py --quick --data $(DATA) --out $(OUT)/benchmark_quick

benchmark: peers
	$(BIN)/python scripts/benchmark.py --data $(DATA) --out $(OUT)/benchmark --salton-model $(OUT)/model \
		--doc docs/benchmarks.md

# Scale-out throughput (scripts/bench_scaling.py, after make benchmark, whose grid model it uses):
# a synthetic month on 100 stations as a pick dataset, a week of it associated in one process and
# on 1 and 2 Dask workers, training steps/s on 1 and 2 gloo ranks, and the decade projection.
scaling: $(STAMP)
	$(BIN)/python scripts/bench_scaling.py --model $(OUT)/benchmark/models/grid/model --out $(OUT)/scaling --days 7

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache *.egg-info
