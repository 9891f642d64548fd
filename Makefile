# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
DATA ?= ../shared/data
OUT ?= demo_out
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SALTON := $(DATA)/salton_sea_2020

.PHONY: install test test-slow demo clean

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

# The pipeline as far as it is built: check the data (compare), calibrate the generator to the
# real picks, then generate a day of synthetic picks with the calibrated parameters.
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

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache *.egg-info
