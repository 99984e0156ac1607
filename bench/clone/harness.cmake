# The in-process clone harness (library microvm_clone_bench): Vm::clone_from() timed inside
# the bench process, with and without a ClonePool. Included from cli/bench/CMakeLists.txt; the
# `clone` scenario (cli/bench/scenarios/restore.cc) uses it. It links the VMM library itself,
# the way an embedder spawning clones would.
if(NOT TARGET microvm_clone_bench)
  add_library(microvm_clone_bench STATIC ${PROJECT_SOURCE_DIR}/bench/clone/in_process_clones.cc)
  target_link_libraries(microvm_clone_bench PUBLIC microvm_lib microvm_base)
  microvm_warnings(microvm_clone_bench)
endif()
if(TARGET microvm_bench_cli AND CMAKE_CURRENT_SOURCE_DIR STREQUAL "${PROJECT_SOURCE_DIR}/cli/bench")
  target_link_libraries(microvm_bench_cli PUBLIC microvm_clone_bench)
endif()
