# Debian packages (cpack -G DEB in the build folder): `microvm` (the command and libmicrovm.so),
# `libmicrovm-dev` (headers, CMake package, pkg-config file) and `microvm-bench` (the benchmark
# tool behind `microvm bench`, which people who only run VMs need not install).
# scripts/package-test.sh builds, installs and uses them.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME microvm)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "microvm maintainers <maintainers@microvm.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "small, fast KVM virtual machine monitor")
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev bench)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME microvm)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
# libslirp is loaded with dlopen() for --net user only (devices/net/slirp_api.h), so
# dpkg-shlibdeps cannot see it.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_RECOMMENDS "libslirp0")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_GENERATE_SHLIBS ON)  # shlibs file and the ldconfig trigger
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libmicrovm-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "microvm (= ${PROJECT_VERSION})")
set(CPACK_DEBIAN_BENCH_PACKAGE_NAME microvm-bench)
set(CPACK_DEBIAN_BENCH_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_BENCH_PACKAGE_SHLIBDEPS ON)
# It measures the microvm next to it; fio, qemu, kvmtool and strace only for the scenarios
# that compare with them or look inside the guest.
set(CPACK_DEBIAN_BENCH_PACKAGE_DEPENDS "microvm (= ${PROJECT_VERSION})")
set(CPACK_DEBIAN_BENCH_PACKAGE_SUGGESTS "strace, fio, qemu-system-x86")
include(CPack)

# Man pages, generated from each command's own --help by help2man (so they cannot drift from
# the program), and bash completion; each installed with the package of its program.
find_program(HELP2MAN help2man)
if(HELP2MAN)
  set(_man_dir ${PROJECT_BINARY_DIR}/man)
  # page|program target|help option|summary|package component
  set(_pages
    "microvm|microvm|--help|a small, fast KVM virtual machine monitor|runtime"
    "microvm-run|microvm|run --help|boot a Linux guest with microvm|runtime"
    "microvm-ctl|microvm|ctl --help|control a running microvm through its API socket|runtime"
    "microvm-img|microvm|img --help|create, inspect, check, convert and resize disk images|runtime"
    "microvm-bench|microvm-bench|--help|measure microvm against kvmtool, QEMU and the host|bench")
  set(_outputs)
  foreach(page ${_pages})
    string(REPLACE "|" ";" parts "${page}")
    list(GET parts 0 name)
    list(GET parts 1 program)
    list(GET parts 2 help)
    list(GET parts 3 what)
    list(GET parts 4 component)
    add_custom_command(OUTPUT ${_man_dir}/${name}.1
      COMMAND ${CMAKE_COMMAND} -E make_directory ${_man_dir}
      COMMAND ${HELP2MAN} --no-info --no-discard-stderr --version-string=${PROJECT_VERSION} "--help-option=${help}"
              --name=${what} --output=${_man_dir}/${name}.1 $<TARGET_FILE:${program}>
      DEPENDS ${program} VERBATIM)
    list(APPEND _outputs ${_man_dir}/${name}.1)
    install(FILES ${_man_dir}/${name}.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT ${component})
  endforeach()
  add_custom_target(microvm_man ALL DEPENDS ${_outputs})
endif()
install(FILES ${PROJECT_SOURCE_DIR}/dist/microvm.bash-completion DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME microvm COMPONENT runtime)
install(FILES ${PROJECT_SOURCE_DIR}/dist/microvm-bench.bash-completion
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME microvm-bench COMPONENT bench)
