# unit_vhost: the vhost-user frontend, the virtiofsd launcher and the virtio-fs device.
set(UNIT_DEPS microvm_vhost)
if(TARGET microvm_virtio_fs)
  list(APPEND UNIT_DEPS microvm_virtio_fs)
endif()
