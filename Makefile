# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
DATA ?= ../shared/data
OUT ?= demo_out
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SALTON := $(DATA)/salton_sea_2020

.PHONY: install test test-slow demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall only when the package metadata or the pins change.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not gpu"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m "slow"

# The whole chain on the Salton Sea days: check the data (compare), calibrate the generator to the
# real picks, generate a day of synthetic picks, train the model, associate the real picks and
# compare the catalog with SCSN.
demo: $(STAMP)
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
	$(BIN)/genie associate \
		--picks $(SALTON)/picks_phasenet.csv \
		--stations $(SALTON)/stations.csv \
		--model $(OUT)/model \
		--reference $(SALTON)/catalog_scsn.csv \
		--out $(OUT)/associate

# The Salton Sea benchmark against PyOcto and GaMMA (after make demo). The peers are installed
# without their dependency pins: pyocto 0.2.2 asks numpy<2 on Python 3.11 and gmma 1.2.17
# scikit-learn==1.7, while scikit-optimize needs the tested scikit-learn 1.9; both run with
# the pinned numpy 2.4 and scikit-learn 1.9.
bench: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps pyocto==0.2.2 gmma==1.2.17 numba==0.68.1 llvmlite==0.50.0
	$(BIN)/python scripts/bench_associate.py --model $(OUT)/model --data $(DATA)
	$(BIN)/python scripts/bench_salton.py --model $(OUT)/model --data $(DATA) --out $(OUT)/bench

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache *.egg-info
