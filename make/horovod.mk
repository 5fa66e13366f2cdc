# Horovod for the Horovod backend of the deep-model estimator (pipelines/deep).
# Builds Horovod from its PyPI sdist with the two corrections it needs for current PyTorch and
# caches the wheel outside the clone (keyed by horovod, torch and python versions); a second run,
# or a fresh clone, reuses it. See scripts/build_horovod.sh and docs/deep_learning.md.
HOROVOD_VERSION ?= 0.28.1
CLICKML_WHEEL_CACHE ?= $(HOME)/.cache/clickml/wheels

.PHONY: horovod
horovod: venv
	@PY=$(PY) HOROVOD_VERSION=$(HOROVOD_VERSION) CLICKML_WHEEL_CACHE=$(CLICKML_WHEEL_CACHE) \
	  bash scripts/build_horovod.sh

TEST_PREREQS += horovod
