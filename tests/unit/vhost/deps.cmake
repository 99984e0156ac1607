# unit_vhost: the vhost-user frontend, the virtiofsd launcher and the virtio-fs device.
set(UNIT_DEPS microvm_vhost)
if(TARGET microvm_virtio_fs)
  list(APPEND UNIT_DEPS microvm_virtio_fs)
endif()

# A test-only hostile vhost-user backend process (hostile_backend_test.cc spawns it).
add_executable(hostile_vhost_backend ${dir}/hostile_vhost_backend.cc)
target_link_libraries(hostile_vhost_backend PRIVATE microvm_vhost)
microvm_warnings(hostile_vhost_backend)
add_dependencies(unit_${layer} hostile_vhost_backend)
target_compile_definitions(unit_${layer} PRIVATE HOSTILE_VHOST_BACKEND="$<TARGET_FILE:hostile_vhost_backend>")
