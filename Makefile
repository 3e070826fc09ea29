# Makefile: a thin wrapper over CMake. make (build), make test (build and run every test this
# machine can run), make deps (install Debian packages), make clean.
#
# LUMEN_CUDA=AUTO|ON|OFF picks the CUDA backend (AUTO: when nvcc and cuBLAS are found).
BUILD_DIR ?= build
BUILD_TYPE ?= Release
LUMEN_CUDA ?= AUTO
JOBS ?= $(shell nproc)

.PHONY: all build test deps clean

all: build

deps:
	@bash scripts/install-deps.sh

# Install the packages only when one is missing, so make and make test work on a bare Debian 12.
$(BUILD_DIR)/.deps-ok: scripts/install-deps.sh
	@bash scripts/install-deps.sh
	@mkdir -p $(BUILD_DIR) && touch $@

# Configures every time (a second when nothing changed), so LUMEN_CUDA=... on the command line
# always takes effect.
build: $(BUILD_DIR)/.deps-ok
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DLUMEN_CUDA=$(LUMEN_CUDA)
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD_DIR)
