"""What is built on a classified map: an ELF file's load plan and run (explain, run),
the lesson's picture (picture), a map saved and shown again (snapshot)."""
