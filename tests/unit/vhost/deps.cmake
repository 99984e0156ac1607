# unit_vhost: the vhost-user frontend and the virtiofsd launcher; the virtio-fs device's tests
# are in virtio/fs.
set(UNIT_DEPS microvm_vhost)
