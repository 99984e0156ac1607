# unit_vsock: virtio-vsock (packet parser, device state machine) and its Unix-socket backend.
set(UNIT_DEPS microvm_virtio_vsock microvm_vsock_backend microvm_virtio microvm_memory microvm_base)
