# Thin wrappers over the `iaa` command line. Every variable below can be set: make extract DATASET=ava
PYTHON     ?= python3
VENV       ?= .venv
DATASET    ?= demo
DATA_DIR   ?= data/$(DATASET)
BACKBONE   ?= efficientnet_lite0
WEIGHTS    ?=
FEATURES   ?= mlsp_narrow,mlsp_wide
VIEWS      ?= crop_flip
ENGINE     ?= zarr
STORE_EXT   = $(if $(filter hdf5,$(ENGINE)),.h5,.zarr)
STORE      ?= stores/$(DATASET)_$(BACKBONE)$(STORE_EXT)
MAX_SIDE   ?=
SCHEDULER  ?=
OVERWRITE  ?=
HEAD       ?= single3fc
HEADS      ?= single1fc,single3fc,multi3fc,pool3fc,svm_photo_critic,rf
SEEDS      ?= 1
FOLDS      ?=
ABLATE_DIR ?= runs/ablate_$(DATASET)_$(BACKBONE)
DEMO_HEADS ?= single3fc,pool3fc,svm_photo_critic
DEMO_SEEDS ?= 3
SEED       ?= 0
RUN_DIR    ?= runs/$(DATASET)_$(BACKBONE)_$(HEAD)_seed$(SEED)
CACHE      ?= auto
TRAIN_ARGS ?=
PYTEST_ARGS ?=
BENCH_IMAGES ?= 24
BENCH_TRAIN_ARGS ?=
BENCH_ABLATE_ARGS ?=
BENCH_QUALITY_ARGS ?=
BENCH_SCORE_ARGS ?=
BENCH_SERVE_ARGS ?= --requests 1000 --clients 4
BENCH_PERSONAL_ARGS ?=
ANSWERS    ?= answers.csv
PERSONAL_OUT ?= runs/personal
SERVE_ARGS ?=
INPUT_SHAPE ?= 5,5,16928
PHOTOS     ?=
SCORE_OUT  ?=
SCORE_ARGS ?=
VIDEO      ?=
FORMAT     ?= saved_model
EXPORT_OUT ?= exported/$(notdir $(RUN_DIR))$(if $(filter onnx,$(FORMAT)),.onnx)
# The demo ends by scoring photos of an unseen (test) scene: the original and its degradations.
# (a shell glob: make expands a recipe before its first line runs, when the demo photos do not exist yet)
DEMO_PHOTOS ?= $(DATA_DIR)/images/motorcycle_0*.jpg

BIN := $(VENV)/bin
IAA := $(BIN)/iaa
STAMP := $(VENV)/.installed


EXTRACT_ARGS = --dataset $(DATASET) --data-dir $(DATA_DIR) --backbone $(BACKBONE) \
	--features $(FEATURES) --views $(VIEWS) --store $(STORE) --engine $(ENGINE) \
	$(if $(WEIGHTS),--weights $(WEIGHTS)) $(if $(MAX_SIDE),--max-side $(MAX_SIDE)) \
	$(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(filter 1 yes true,$(OVERWRITE)),--overwrite)

.PHONY: install test demo ablate bench-ablate bench-quality bench-nystroem bench-precision bench-score bench-memory extract train score best-shot video explain export serve bench-serve bench-personal personalize describe describe-head store-info bench-extract bench-train reproduce-ava clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

extract: $(STAMP)
	$(IAA) extract $(EXTRACT_ARGS)

# The whole job on the embedded demo set, offline: extract, train three heads, evaluate, leaderboard.
# The demo set is tiny (231 training images): batch 32 gives the heads enough steps per epoch, and
# three seeds give a mean ± std (one seed's test SRCC on 66 images moves by up to ±0.1).
demo: $(STAMP)
	$(IAA) extract $(EXTRACT_ARGS)
	$(IAA) ablate --store $(STORE) --heads $(DEMO_HEADS) --seeds $(DEMO_SEEDS) --out runs/demo_$(BACKBONE)
	$(IAA) score runs/demo_$(BACKBONE) $(DEMO_PHOTOS) --out runs/demo_$(BACKBONE)/scores

ablate: $(STAMP)
	$(IAA) ablate --store $(STORE) --heads $(HEADS) --seeds $(SEEDS) $(if $(FOLDS),--folds $(FOLDS)) --out $(ABLATE_DIR) $(TRAIN_ARGS)

bench-ablate: $(STAMP)
	$(BIN)/python benchmarks/bench_ablate.py $(BENCH_ABLATE_ARGS)

bench-memory: $(STAMP)
	$(BIN)/python benchmarks/bench_memory.py

bench-score: $(STAMP)
	$(BIN)/python benchmarks/bench_score.py $(BENCH_SCORE_ARGS)

bench-nystroem: $(STAMP)
	$(BIN)/python benchmarks/bench_nystroem.py $(BENCH_NYSTROEM_ARGS)

bench-precision: $(STAMP)
	$(BIN)/python benchmarks/bench_precision.py $(BENCH_PRECISION_ARGS)

bench-quality: $(STAMP)
	$(BIN)/python benchmarks/bench_quality.py $(BENCH_QUALITY_ARGS)

train: $(STAMP)
	$(IAA) train --store $(STORE) --head $(HEAD) --run-dir $(RUN_DIR) --seed $(SEED) --cache $(CACHE) $(TRAIN_ARGS)

# MLSP's Table 2 rows (Inception-v3 narrow MLSP of 256x256 warped photos) and its Table 3 Pool-3FC /
# Single-3FC rows (InceptionResNet-v2, full resolution, 8 views) for users with AVA under AVA_DIR and a GPU:
# docs/reproduce/mlsp.md lists every command, the paper's figures and the projected time.
AVA_DIR ?= data/ava
reproduce-ava: $(STAMP)
	$(IAA) extract --dataset ava --data-dir $(AVA_DIR) --backbone iv3 --weights imagenet --features mlsp_narrow \
		--views crop_flip --resize warp:256 --store stores/ava_iv3_warp256.zarr
	$(IAA) ablate --store stores/ava_iv3_warp256.zarr --heads single3fc,multi3fc,single1fc --reference-protocol \
		--out runs/mlsp_t2
	$(IAA) train --store stores/ava_iv3_warp256.zarr --head single1fc --blocks last:5 --reference-protocol \
		--run-dir runs/mlsp_t2_single1fc5
	$(IAA) extract --dataset ava --data-dir $(AVA_DIR) --backbone irnv2 --weights imagenet \
		--features mlsp_narrow,mlsp_wide --views crop_flip --store stores/ava_irnv2.zarr
	$(IAA) train --store stores/ava_irnv2.zarr --head pool3fc --reference-protocol --run-dir runs/mlsp_t3_pool3fc
	$(IAA) train --store stores/ava_irnv2.zarr --head single3fc --reference-protocol --run-dir runs/mlsp_t3_single3fc

# Score photos (files or folders) with a trained run, or with an ablation's best run.
score: $(STAMP)
	$(IAA) score $(RUN_DIR) $(PHOTOS) $(if $(SCORE_OUT),--out $(SCORE_OUT)) $(SCORE_ARGS)

best-shot: $(STAMP)
	$(IAA) best-shot $(RUN_DIR) $(PHOTOS) $(if $(SCORE_OUT),--out $(SCORE_OUT)) $(SCORE_ARGS)

video: $(STAMP)
	$(IAA) video $(RUN_DIR) $(VIDEO) $(if $(SCORE_OUT),--out $(SCORE_OUT)) $(SCORE_ARGS)

explain: $(STAMP)
	$(IAA) explain $(RUN_DIR) $(PHOTOS) $(if $(SCORE_OUT),--out $(SCORE_OUT)) $(SCORE_ARGS)

serve: $(STAMP)
	$(IAA) serve $(RUN_DIR) $(SERVE_ARGS)

bench-serve: $(STAMP)
	$(BIN)/python benchmarks/bench_serve.py $(BENCH_SERVE_ARGS)

bench-personal: $(STAMP)
	$(BIN)/python benchmarks/bench_personal.py $(BENCH_PERSONAL_ARGS)

personalize: $(STAMP)
	$(IAA) personalize $(RUN_DIR) $(PHOTOS) --answers $(ANSWERS) --out $(PERSONAL_OUT)

export: $(STAMP)
	$(IAA) export $(RUN_DIR) --format $(FORMAT) --out $(EXPORT_OUT)

describe-head: $(STAMP)
	$(IAA) describe-head $(HEAD) --input-shape $(INPUT_SHAPE)

describe: $(STAMP)
	$(IAA) describe $(BACKBONE)

store-info: $(STAMP)
	$(IAA) store-info $(STORE)

bench-extract: $(STAMP)
	$(BIN)/python benchmarks/bench_extract.py --backbone $(BACKBONE) --views $(VIEWS) \
		--features $(FEATURES) --images $(BENCH_IMAGES) $(if $(WEIGHTS),--weights $(WEIGHTS))

bench-train: $(STAMP)
	$(BIN)/python benchmarks/bench_train.py $(BENCH_TRAIN_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
