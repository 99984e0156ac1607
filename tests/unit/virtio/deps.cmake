# unit_virtio covers the core and the device models.
set(UNIT_DEPS microvm_virtio microvm_virtio_rng microvm_virtio_console microvm_console microvm_virtio_blk microvm_virtio microvm_block microvm_memory microvm_base)
