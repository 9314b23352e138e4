# The Go heap sample, built where the Go toolchain is (golang-go; `make deps`).
# GOCACHE and HOME under bin/: the build works for root in CI, with no home and
# no network (GO111MODULE=off: no go.mod, nothing to download).
ifneq ($(shell command -v go),)
RUNTIME_SAMPLES += $(BIN)/goheap $(BIN)/goheap-cgo
GO_ENV := GOCACHE=$(CURDIR)/$(BIN)/go-cache HOME=$(CURDIR)/$(BIN) GO111MODULE=off GOFLAGS= GOPROXY=off

$(BIN)/goheap: goheap/main.go goheap/cgo.go go.mk | $(BIN)
	$(GO_ENV) CGO_ENABLED=0 go build -o $@ ./goheap

$(BIN)/goheap-cgo: goheap/main.go goheap/cgo.go go.mk | $(BIN)
	$(GO_ENV) CGO_ENABLED=1 go build -o $@ ./goheap
endif
