# The virtio-net device-mode harness (library microvm_net_bench). Included from
# bench/net/CMakeLists.txt and from cli/bench/CMakeLists.txt (the `net` scenario of
# `microvm bench` links it), whichever comes first; the guard makes the second a no-op.
if(NOT TARGET microvm_net_bench)
  set(_net_dir ${PROJECT_SOURCE_DIR}/bench/net)
  add_library(microvm_net_bench STATIC ${_net_dir}/workload.cc ${_net_dir}/tap_namespace.cc ${_net_dir}/injector.cc
              ${_net_dir}/tap_loop.cc ${_net_dir}/device_driver.cc ${_net_dir}/user_net_echo.cc)
  target_link_libraries(microvm_net_bench PUBLIC microvm_virtio_net microvm_net microvm_memory microvm_base)
  microvm_warnings(microvm_net_bench)
endif()
# From cli/bench: the `net` scenario (cli/bench/scenarios/net_device.cc) uses the harness.
if(TARGET microvm_bench_cli AND CMAKE_CURRENT_SOURCE_DIR STREQUAL "${PROJECT_SOURCE_DIR}/cli/bench")
  target_link_libraries(microvm_bench_cli PUBLIC microvm_net_bench)
endif()
