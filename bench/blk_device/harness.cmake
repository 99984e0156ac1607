# The virtio-blk device-mode driver harness (library microvm_blk_bench). Included from
# bench/blk_device/CMakeLists.txt and from cli/bench/CMakeLists.txt (the `blk` scenario of
# `microvm bench` links it), whichever comes first; the guard makes the second a no-op.
if(NOT TARGET microvm_blk_bench)
  set(_blk_dir ${PROJECT_SOURCE_DIR}/bench/blk_device)
  add_library(microvm_blk_bench STATIC ${_blk_dir}/workload.cc ${_blk_dir}/fio_runner.cc ${_blk_dir}/device_driver.cc
              ${_blk_dir}/image_prep.cc)
  target_link_libraries(microvm_blk_bench PUBLIC microvm_virtio_blk microvm_block microvm_memory microvm_base
                        nlohmann_json::nlohmann_json)
  microvm_warnings(microvm_blk_bench)
endif()
# From cli/bench: the `blk` scenario (cli/bench/scenarios/blk_device.cc) uses the harness.
if(TARGET microvm_bench_cli AND CMAKE_CURRENT_SOURCE_DIR STREQUAL "${PROJECT_SOURCE_DIR}/cli/bench")
  target_link_libraries(microvm_bench_cli PUBLIC microvm_blk_bench)
endif()
