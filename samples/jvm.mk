# The Java sample, built where a JDK is installed (default-jdk-headless; `make deps`).
ifneq ($(shell command -v javac),)
RUNTIME_SAMPLES += $(BIN)/Heap.class
endif

$(BIN)/Heap.class: jvm/Heap.java jvm.mk | $(BIN)
	javac -d $(BIN) $<
