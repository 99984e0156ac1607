# Warnings for our own targets: call microvm_warnings(target).
function(microvm_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)
endfunction()

# A library made of every .cc in the current folder (non-recursive unless RECURSE given).
# Folders grow by adding files, not by editing CMake lists.
function(microvm_library name)
  cmake_parse_arguments(ARG "RECURSE" "" "DEPS;SOURCES_EXCLUDE" ${ARGN})
  if(ARG_RECURSE)
    file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  else()
    file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  endif()
  foreach(ex ${ARG_SOURCES_EXCLUDE})
    list(FILTER srcs EXCLUDE REGEX ${ex})
  endforeach()
  add_library(${name} STATIC ${srcs})
  # The source root is the include root (#include "base/fd.h"), set on each library and passed
  # on to what links it; nothing is set for whole folders, so a project that adds microvm with
  # add_subdirectory sees only what microvm::microvm gives it (include/).
  target_include_directories(${name} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
                                            $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  microvm_warnings(${name})
endfunction()
