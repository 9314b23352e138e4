# The node sample, samples/node/heap.js: a script, nothing to build.  Its test runs it
# where node is installed (nodejs; `make deps`), and skips otherwise.
