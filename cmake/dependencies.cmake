# Every dependency is a Debian package; scripts/install-deps.sh installs them.
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(URING REQUIRED IMPORTED_TARGET liburing)
pkg_check_modules(SECCOMP REQUIRED IMPORTED_TARGET libseccomp)
pkg_check_modules(ZLIB REQUIRED IMPORTED_TARGET zlib)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
# ext2/3/4 file systems inside disk images (boot/image_boot): libext2fs-dev (e2fsprogs).
pkg_check_modules(EXT2FS REQUIRED IMPORTED_TARGET ext2fs com_err)
pkg_check_modules(SLIRP IMPORTED_TARGET slirp)
find_package(CLI11 CONFIG REQUIRED)
find_package(nlohmann_json REQUIRED)
if(MICROVM_TESTS)
  find_package(GTest REQUIRED)
endif()
if(MICROVM_BENCH)
  find_package(benchmark REQUIRED)
endif()
# The API server's HTTP/1.1 parser (Node.js http_parser; Debian ships no pkg-config file).
find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h REQUIRED)
find_library(HTTP_PARSER_LIBRARY http_parser REQUIRED)
add_library(http_parser::http_parser UNKNOWN IMPORTED)
set_target_properties(http_parser::http_parser PROPERTIES IMPORTED_LOCATION ${HTTP_PARSER_LIBRARY}
                      INTERFACE_INCLUDE_DIRECTORIES ${HTTP_PARSER_INCLUDE_DIR})
