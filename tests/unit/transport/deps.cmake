set(UNIT_DEPS microvm_virtio_transport microvm_pci microvm_memory microvm_base)
# End-to-end tests with a real device, when the virtio-rng library is part of the build.
if(TARGET microvm_virtio_rng)
  list(APPEND UNIT_DEPS microvm_virtio_rng microvm_virtio)
  target_compile_definitions(unit_${layer} PRIVATE MICROVM_TEST_WITH_RNG=1)
endif()
