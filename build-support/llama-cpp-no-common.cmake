# Included right after llama.cpp's `project()` when the Makefile builds llama-cpp-python
# (CMAKE_PROJECT_llama.cpp_INCLUDE). llama-cpp-python forces llama.cpp's `common` helper
# library on and installs it, but its Python package never loads it; a normal variable here
# shadows that cache setting inside llama.cpp, so `common` and cpp-httplib are not compiled.
set(LLAMA_BUILD_COMMON OFF)
