# unit_virtio covers the core and the device models.
set(UNIT_DEPS microvm_virtio microvm_virtio_rng microvm_virtio_balloon microvm_virtio_pmem microvm_virtio_blk microvm_virtio microvm_block microvm_memory microvm_base)
