# Debian packages (cpack -G DEB in the build folder): `microvm` (the command and libmicrovm.so)
# and `libmicrovm-dev` (headers, CMake package, pkg-config file). scripts/package-test.sh
# builds, installs and uses them.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME microvm)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "microvm maintainers <maintainers@microvm.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "small, fast KVM virtual machine monitor")
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
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
include(CPack)

# Man pages, generated from each command's own --help by help2man (so they cannot drift from
# the program), and bash completion; both installed with the `microvm` package.
find_program(HELP2MAN help2man)
if(HELP2MAN)
  set(_man_dir ${PROJECT_BINARY_DIR}/man)
  set(_pages
    "microvm|--help|a small, fast KVM virtual machine monitor"
    "microvm-run|run --help|boot a Linux guest with microvm"
    "microvm-ctl|ctl --help|control a running microvm through its API socket"
    "microvm-img|img --help|create, inspect, check, convert and resize disk images"
    "microvm-bench|bench --help|measure microvm against kvmtool, QEMU and the host")
  set(_outputs)
  foreach(page ${_pages})
    string(REPLACE "|" ";" parts "${page}")
    list(GET parts 0 name)
    list(GET parts 1 help)
    list(GET parts 2 what)
    add_custom_command(OUTPUT ${_man_dir}/${name}.1
      COMMAND ${CMAKE_COMMAND} -E make_directory ${_man_dir}
      COMMAND ${HELP2MAN} --no-info --no-discard-stderr --version-string=${PROJECT_VERSION} "--help-option=${help}"
              --name=${what} --output=${_man_dir}/${name}.1 $<TARGET_FILE:microvm>
      DEPENDS microvm VERBATIM)
    list(APPEND _outputs ${_man_dir}/${name}.1)
  endforeach()
  add_custom_target(microvm_man ALL DEPENDS ${_outputs})
  install(FILES ${_outputs} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT runtime)
endif()
install(FILES ${PROJECT_SOURCE_DIR}/dist/microvm.bash-completion DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME microvm COMPONENT runtime)
