# poolvae: the public interface. `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The install is redone only when the pinned set, the lock or the package metadata change. The lock constrains
# every transitive dependency too: a newer fontTools, say, subsets fonts differently and changes every PDF figure.
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements.lock pyproject.toml | sha256sum | cut -c1-16)
SEED ?= 0

.PHONY: help setup test test-fast lint bench figures clean-venv

help:  ## List every target with one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_%-]+:.*## / {printf "  \033[1m%-22s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(STAMP)  ## Create .venv with the pinned requirements and poolvae in editable mode (idempotent)

$(STAMP): requirements.txt requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -r requirements.txt -c requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

test: setup  ## Run the whole test suite (installs what it needs first)
	$(PY) -m pytest
	$(PY) -m pytest --nbval --nbval-sanitize-with book/sanitize.cfg book/

test-fast: setup  ## Run the tests without the slow ones
	$(PY) -m pytest -m "not slow"

lint: setup  ## Check style with ruff
	$(PY) -m ruff check code tests

.PHONY: bench-train gpu-check
bench-train: setup  ## Training steps of every method beside the floor (cpu and paper settings) -> results/bench/train-<device>.json
	$(PY) -m poolvae.bench_train --device $(DEVICE) --threads 1 --seed $(SEED)

gpu-check: setup  ## On a GPU: ci train+evaluate, resume, bench-train at paper settings -> results/bench/gpu-check-<device>.{log,json}
	$(PY) -m poolvae.gpu_check --device $(if $(filter auto,$(DEVICE)),cuda,$(DEVICE))

bench: setup  ## Time every pooling rule (forward+backward; a few also compiled) -> results/bench/aggregators.json
	$(PY) -m poolvae.bench --seed $(SEED) --threads 1 --compiled hellinger wb moe

clean-venv:  ## Remove the virtual environment
	rm -rf $(VENV)

.PHONY: data-mini reproduce-hel-fig8 reproduce-fig8

data-mini: setup  ## Build the offline PolyMNIST-mini (with the cpu scale's 16,000-tuple set) and MNIST-SVHN-Text-mini (cpu and ci sets each) into data/ (replacing them; seed SEED)
	$(PY) -m poolvae.polymnist --build-mini --seed $(SEED)
	$(PY) -m poolvae.polymnist --build-mini --tuples 4 --seed $(SEED)
	$(PY) -m poolvae.polymnist --build-mini --ci --seed $(SEED)
	$(PY) -m poolvae.mstmini --build --seed $(SEED)
	$(PY) -m poolvae.mstmini --build --scale ci --seed $(SEED)

reproduce-hel-fig8: setup  ## HEL Fig. 8, samples of each data set present -> figures/hel-fig8.{png,pdf}
	$(PY) -m poolvae.datasets --figure hel-fig8 --seed $(SEED)

reproduce-fig8: reproduce-hel-fig8  ## Same as reproduce-hel-fig8 (no prefix means the HELVAE paper)

.PHONY: figures reproduce-hel-fig1 reproduce-hel-fig2 reproduce-hel-fig7 reproduce-wb-fig2 \
	reproduce-holder-alpha reproduce-fig1 reproduce-fig2 reproduce-fig7

figures: setup  ## Recompute the exact figures and redraw trained ones from results/
	$(PY) -m poolvae.figures --seed $(SEED)

reproduce-hel-fig1: setup  ## HEL Fig. 1, PoE/MoE/Hölder-1/2 contours of three 2-D experts (exact, seconds)
	$(PY) -m poolvae.figures --only hel-fig1 --seed $(SEED)

reproduce-hel-fig2: setup  ## HEL Fig. 2, NLL/BC/sharpness vs number of good experts, 2 bad (exact, seconds)
	$(PY) -m poolvae.figures --only hel-fig2 --seed $(SEED)

reproduce-hel-fig7: setup  ## HEL Fig. 7, the Fig. 2 study with 0-3 bad experts and WB (exact, seconds)
	$(PY) -m poolvae.figures --only hel-fig7 --seed $(SEED)

reproduce-wb-fig2: setup  ## WB Fig. 2, PoE/MoE/WB of two 1-D Gaussian experts (exact, seconds)
	$(PY) -m poolvae.figures --only wb-fig2 --seed $(SEED)

reproduce-holder-alpha: setup  ## Hölder pooling from alpha=0 to 1 on the Fig. 1 experts, with Hellinger (exact)
	$(PY) -m poolvae.figures --only holder-alpha --seed $(SEED)

reproduce-fig1: reproduce-hel-fig1  ## Same as reproduce-hel-fig1 (no prefix means the HELVAE paper)

reproduce-fig2: reproduce-hel-fig2  ## Same as reproduce-hel-fig2 (no prefix means the HELVAE paper)

reproduce-fig7: reproduce-hel-fig7  ## Same as reproduce-hel-fig7 (no prefix means the HELVAE paper)

.PHONY: book book-notebooks book-screenshot

BOOK_HTML := book/_build/html
BOOK_SHOTS := book/_build/screenshots
BOOK_SHOT_HEIGHT ?= 32000

book: setup  ## Build the Jupyter Book offline into book/_build/html (stored outputs; warnings are errors)
	$(VENV)/bin/jupyter-book build book --warningiserror --nitpick --keep-going
	@grep -q '_static/mathjax/tex-chtml.js' $(BOOK_HTML)/04_moment_matching.html || \
		{ echo "book: MathJax is not served from _static/mathjax (offline build broken)"; exit 1; }

book-notebooks: setup  ## Rebuild and re-execute the chapter notebooks from book/src/*.md (commit the result)
	$(PY) book/make_notebooks.py

book-screenshot: book  ## Headless-Chromium screenshot of every page of the book -> book/_build/screenshots/<page>.png
	@command -v chromium >/dev/null 2>&1 || { echo "book-screenshot: chromium not found; install it with"; \
		echo "    apt-get install chromium        (Debian/Ubuntu; as root)"; exit 1; }
	@rm -rf $(BOOK_SHOTS) && mkdir -p $(BOOK_SHOTS) && profile=$$(mktemp -d) && trap 'rm -rf "$$profile"' EXIT && \
	for page in $(BOOK_HTML)/intro.html $(BOOK_HTML)/[0-9][0-9]_*.html; do \
		chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$$profile" \
			--window-size=1280,$(BOOK_SHOT_HEIGHT) --virtual-time-budget=10000 \
			--screenshot=$(BOOK_SHOTS)/$$(basename $$page .html).png "file://$(CURDIR)/$$page" 2>/dev/null || exit 1; \
	done
	@# a page is shot in a window of BOOK_SHOT_HEIGHT pixels, then cut below its last non-white row: right of the
	@# sidebar (its border runs the full height) and above the footer (pinned to the window's last 120 pixels)
	@$(PY) -c "import glob, sys, numpy as np; from PIL import Image; \
		ims = {f: Image.open(f).convert('RGB') for f in sorted(glob.glob('$(BOOK_SHOTS)/*.png'))}; \
		last = {f: int(np.nonzero((np.asarray(im)[:-120, 260:] < 245).any(axis=(1, 2)))[0].max()) for f, im in ims.items()}; \
		[im.crop((0, 0, im.width, min(im.height, last[f] + 40))).save(f) for f, im in ims.items()]; \
		cut = [f for f in ims if last[f] >= ims[f].height - 125]; \
		print(f'wrote {len(ims)} screenshots to $(BOOK_SHOTS)/'); \
		cut and print(f'taller than BOOK_SHOT_HEIGHT=$(BOOK_SHOT_HEIGHT), cut: {cut}'); sys.exit(1 if cut or not ims else 0)"

.PHONY: train reproduce-hel-table6 reproduce-table6
DATASET ?= polymnist-mini
METHOD ?= helvae
BETA ?= 1.0
SCALE ?= cpu
# auto: cuda when torch sees a GPU, else cpu; or cpu, cuda, cuda:N (train, evaluate, reproduce-*, bench-train)
DEVICE ?= auto

train: setup  ## Train one run: make train METHOD=helvae BETA=2.5 SEED=0 SCALE=cpu DATASET=polymnist-mini (resumable)
	$(PY) -m poolvae.train --dataset $(DATASET) --method $(METHOD) --beta $(BETA) --seed $(SEED) --scale $(SCALE) \
	  --device $(DEVICE)

.PHONY: evaluate
RUN ?=
evaluate: setup  ## Evaluate a trained run -> its evaluation.json: make evaluate METHOD=helvae BETA=2.5 SEED=0 SCALE=cpu (or RUN=dir)
	POOLVAE_DEVICE=$(DEVICE) $(PY) -m poolvae.evaluate $(if $(RUN),$(RUN),results/runs/$(SCALE)/$(DATASET)/$(METHOD)/beta=$$(printf '%g' $(BETA))/seed=$(SEED))

reproduce-hel-table6: setup  ## HEL Table 6, seconds per training batch of every method; CUB and CelebA on synthetic batches
	$(PY) -m poolvae.timing --scale $(SCALE) --dataset $(DATASET) --seed $(SEED) --threads 1

reproduce-table6: reproduce-hel-table6  ## Same as reproduce-hel-table6 (no prefix means the HELVAE paper)

JOBS ?= 1
EXECUTOR ?= serial

reproduce-list: setup  ## List every item, its runs per scale and its status at SCALE (runs evaluated, rendered)
	$(PY) -m poolvae.experiments list --scale $(SCALE)

reproduce-table%: ## HELVAE paper alias: reproduce-tableN runs reproduce-hel-tableN
	$(MAKE) reproduce-hel-table$*

reproduce-fig%: ## HELVAE paper alias: reproduce-figN runs reproduce-hel-figN
	$(MAKE) reproduce-hel-fig$*

# EXECUTOR=slurm: one GPU per run (poolvae.cluster); PARTITION= and TIME_LIMIT= (minutes per run) for the cluster
PARTITION ?=
TIME_LIMIT ?= 1440
GPUS_PER_RUN ?= 1
CPUS_PER_RUN ?= 8
MEM_PER_RUN ?=
SLURM_ENV = POOLVAE_SLURM_PARTITION=$(PARTITION) POOLVAE_SLURM_TIME=$(TIME_LIMIT) POOLVAE_SLURM_GPUS=$(GPUS_PER_RUN) \
	POOLVAE_SLURM_CPUS=$(CPUS_PER_RUN) POOLVAE_SLURM_MEM_GB=$(MEM_PER_RUN)

reproduce-%: setup  ## Train, evaluate and render a trained item: make reproduce-hel-table8 SCALE=cpu|ci|paper JOBS=n
	POOLVAE_DEVICE=$(DEVICE) $(SLURM_ENV) $(PY) -m poolvae.experiments reproduce $* --scale $(SCALE) --jobs $(JOBS) \
	  --executor $(EXECUTOR)

.PHONY: sweep-polymnist
sweep-polymnist: setup  ## Every trained PolyMNIST item in one pool (issue #18's sweep; hours at cpu): SCALE=cpu JOBS=2
	POOLVAE_DEVICE=$(DEVICE) $(SLURM_ENV) $(PY) -m poolvae.experiments sweep --scale $(SCALE) --jobs $(JOBS) \
	  --executor $(if $(filter serial,$(EXECUTOR)),$(if $(filter 1,$(JOBS)),serial,local),$(EXECUTOR)) --retrain-stale

.PHONY: sweep-plan
sweep-plan: setup  ## What sweep-polymnist would do with each run, and about how long it takes on JOBS cores (runs nothing)
	$(PY) -m poolvae.experiments sweep --scale $(SCALE) --jobs $(JOBS) --retrain-stale --plan

.PHONY: land
# The chapters that read what a landing rewrites (a PolyMNIST item, its runs or the claims ledger): `make land`
# re-executes them, so that nbval passes afterwards. tests/test_book.py fails when a chapter is missing here.
LANDING_CHAPTERS = 08 09 11
land: setup  ## Land the finished, evaluated, up-to-date runs of another checkout (FROM=path: a sweep's worktree, a GPU box's copy), render their items, claims, README and the chapters that read them
	@test -n "$(FROM)" || { echo "usage: make land FROM=/path/to/other/checkout [SCALE=cpu]"; exit 2; }
	$(PY) -m poolvae.land $(FROM) --scale $(SCALE)
	$(MAKE) --no-print-directory claims readme
	$(PY) book/make_notebooks.py $(LANDING_CHAPTERS)

.PHONY: diagnose-budget
BUDGET_EPOCHS ?= 180
BUDGET_METHODS ?= helvae mopoe mwbvae mvae mmvae mmvaeplus
BUDGET_RESULTS = results/diagnostics/epochs=$(BUDGET_EPOCHS)
BUDGET_CHECKPOINTS = checkpoints/diagnostics/epochs=$(BUDGET_EPOCHS)
diagnose-budget: setup  ## BUDGET_METHODS (HEL Table 8's but CoDEVAE; ~3 h) at beta 2.5 for BUDGET_EPOCHS=180 epochs, 3x cpu, in results/diagnostics
	for m in $(BUDGET_METHODS); do \
	  $(PY) -m poolvae.train --dataset polymnist-mini --method $$m --beta 2.5 --seed 0 --scale cpu \
	    --set epochs=$(BUDGET_EPOCHS) tuples=1 --runs-dir $(BUDGET_RESULTS)/runs --checkpoint-dir $(BUDGET_CHECKPOINTS) && \
	  $(PY) -m poolvae.evaluate $(BUDGET_RESULTS)/runs/cpu/polymnist-mini/$$m/beta=2.5/seed=0 \
	    --checkpoint-dir $(BUDGET_CHECKPOINTS) || exit 1; \
	done

.PHONY: diagnose-warmup
WARMUP_EPOCHS ?= 20
WARMUP_BETAS ?= 5 10
WARMUP_THREADS ?=
WARMUP_ENV = $(if $(WARMUP_THREADS),OMP_NUM_THREADS=$(WARMUP_THREADS) )
WARMUP_RESULTS = results/diagnostics/kl_warmup=$(WARMUP_EPOCHS)
WARMUP_CHECKPOINTS = checkpoints/diagnostics/kl_warmup=$(WARMUP_EPOCHS)
diagnose-warmup: $(addprefix diagnose-warmup-beta-,$(WARMUP_BETAS))  ## MVAE at WARMUP_BETAS (5 10) with a linear KL warm-up of WARMUP_EPOCHS=20 epochs: does its posterior still collapse? (book chapter 11; 1 to 2.5 h per beta on one thread, as the sweep's MVAE runs took; `make -j2 diagnose-warmup WARMUP_THREADS=1` trains both betas at once, a thread each)

diagnose-warmup-beta-%: setup  ## One beta of diagnose-warmup (e.g. diagnose-warmup-beta-5)
	$(WARMUP_ENV)$(PY) -m poolvae.train --dataset polymnist-mini --method mvae --beta $* --seed 0 --scale cpu \
	  --set kl_warmup=$(WARMUP_EPOCHS) --runs-dir $(WARMUP_RESULTS)/runs --checkpoint-dir $(WARMUP_CHECKPOINTS)
	$(WARMUP_ENV)$(PY) -m poolvae.evaluate $(WARMUP_RESULTS)/runs/cpu/polymnist-mini/mvae/beta=$*/seed=0 \
	  --checkpoint-dir $(WARMUP_CHECKPOINTS)

.PHONY: claims diagnose-convergence
claims: setup  ## The claims ledger (results/claims.{json,md}) and hel-table8's rank and seed charts (seaborn)
	$(PY) -m poolvae.rank_charts hel-table8
	$(PY) -m poolvae.claims

diagnose-convergence: setup  ## Calibrate the cpu budget: HEL Table 8's methods at beta 2.5, 300 epochs' worth of steps of 4,000 tuples, evaluated every 20 (hours; JOBS=2)
	$(PY) -m poolvae.convergence train --jobs $(JOBS)
	$(PY) -m poolvae.convergence summary

.PHONY: readme
readme: setup  ## Regenerate the README's results section from results/ (a test fails when it is out of date)
	$(PY) -m poolvae.report
