# unit_net: virtio-net (device, header checks, MAC) and the network backends.
set(UNIT_DEPS microvm_virtio_net microvm_net microvm_virtio microvm_memory microvm_sandbox microvm_base)
