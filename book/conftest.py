"""pytest collects the chapter notebooks of book/ (with --nbval) but not the built copies or sources."""

collect_ignore_glob = ["_build/*", "src/*", "make_notebooks.py"]
