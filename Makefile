# relaybox — see README.md. Every target that needs Debian packages installs
# them first through .ci/deps (as root), so a fresh Debian 12 machine works.

GO      ?= go
BOARD   ?= qemu
OUT     ?= out
# QEMU's default CPU is an old x86-64: build for the baseline ISA.
export GOAMD64 = v1
export CGO_ENABLED = 0

.PHONY: all build deps generate test image qemu bench clean

all: build

build:
	$(GO) build -trimpath -o $(OUT)/bin/ ./init ./relay/cmd/relay ./image/cmd/...

deps:
	@.ci/deps

# Regenerate the committed bpf2go outputs after changing bpf/*.c or *.h.
generate: deps
	$(GO) generate ./bpf

# Every test: unit, namespaces, real kernel, and the QEMU appliance boots.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 80m ./...

image: deps
	$(GO) run ./image/cmd/mkimage -board $(BOARD) -out $(OUT)/$(BOARD)

qemu: image
	$(GO) run ./image/cmd/runqemu -board $(BOARD) -dir $(OUT)/$(BOARD)

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 2s ./bpf ./relay/...

clean:
	rm -rf $(OUT)
