set(UNIT_DEPS microvm_pci microvm_base)
