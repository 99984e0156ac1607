# unit_net: the network backends (tap, vhost-net, slirp); virtio-net's tests are in virtio/net.
set(UNIT_DEPS microvm_net microvm_sandbox microvm_base)
