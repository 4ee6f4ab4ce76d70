# relaybox — see README.md. Every target that needs Debian packages installs
# them first through .ci/deps (as root), so a fresh Debian 12 machine works.

GO      ?= go
BOARD   ?= qemu
OUT     ?= out
# QEMU's default CPU is an old x86-64: build for the baseline ISA.
export GOAMD64 = v1
export CGO_ENABLED = 0

IMAGE   := $(OUT)/$(BOARD)/initrd.img
SOURCES := $(shell find init relay netcfg bpf image board -name '*.go' -o -name '*.c' -o -name '*.h') go.mod go.sum

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

# out/<board>/{vmlinuz,initrd.img,cmdline}; rebuilt when a source changes.
image: $(IMAGE)

$(IMAGE): $(SOURCES) | deps
	$(GO) run ./image/cmd/mkimage -board $(BOARD) -out $(OUT)/$(BOARD)

# Boot it with the serial console on this terminal (Ctrl-A X quits).
qemu: $(IMAGE)
	$(GO) run ./image/cmd/runqemu -dir $(OUT)/$(BOARD)

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 2s ./bpf ./relay/...

clean:
	rm -rf $(OUT)
