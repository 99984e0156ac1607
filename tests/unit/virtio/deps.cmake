# unit_virtio covers the core, the device models (virtio/<device>/ -> virtio/<device>/ here)
# and the transports (virtio/transport/).
set(UNIT_DEPS microvm_virtio microvm_virtio_rng microvm_virtio_console microvm_console microvm_virtio_balloon
    microvm_virtio_pmem microvm_virtio_blk microvm_virtio_net microvm_net microvm_virtio_transport microvm_pci
    microvm_virtio microvm_block microvm_memory microvm_base)
# The transport tests' end-to-end cases drive a real virtio-rng device.
target_compile_definitions(unit_${layer} PRIVATE MICROVM_TEST_WITH_RNG=1)

if(TARGET microvm_virtio_fs)
  list(APPEND UNIT_DEPS microvm_virtio_fs microvm_vhost)
  # A test-only hostile vhost-user backend process (virtio/fs/hostile_backend_test.cc spawns it).
  add_executable(hostile_vhost_backend ${dir}/fs/hostile_vhost_backend.cc)
  target_link_libraries(hostile_vhost_backend PRIVATE microvm_vhost)
  microvm_warnings(hostile_vhost_backend)
  add_dependencies(unit_${layer} hostile_vhost_backend)
  target_compile_definitions(unit_${layer} PRIVATE HOSTILE_VHOST_BACKEND="$<TARGET_FILE:hostile_vhost_backend>")
endif()
