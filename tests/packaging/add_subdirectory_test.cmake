# ctest: configures tests/packaging/add_subdirectory (a project doing add_subdirectory(microvm)
# and linking microvm::microvm), compiles its program, and checks the compile lines: the
# consumer's has microvm's include/ and not its source root; microvm's own libraries have
# the source root from their targets. Only the consumer's object is built (the library itself
# is built and linked by the rest of the test suite and by scripts/package-test.sh).
#   cmake -DSOURCE_DIR=<microvm> -DWORK=<scratch folder> -P add_subdirectory_test.cmake
file(REMOVE_RECURSE ${WORK})
execute_process(
  COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/packaging/add_subdirectory -B ${WORK} -G Ninja
          -DMICROVM_SOURCE_DIR=${SOURCE_DIR} -DMICROVM_TESTS=OFF -DMICROVM_BENCH=OFF
          -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the add_subdirectory consumer failed:\n${out}")
endif()
execute_process(COMMAND ninja -C ${WORK} CMakeFiles/consumer.dir/consumer.cc.o
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the consumer does not compile against microvm::microvm:\n${out}")
endif()

file(READ ${WORK}/compile_commands.json commands)
string(JSON count LENGTH "${commands}")
math(EXPR last "${count} - 1")
set(consumer_line "")
set(base_line "")
foreach(i RANGE ${last})
  string(JSON file GET "${commands}" ${i} file)
  string(JSON line GET "${commands}" ${i} command)
  if(file MATCHES "/add_subdirectory/consumer\\.cc$")
    set(consumer_line "${line}")
  elseif(file STREQUAL "${SOURCE_DIR}/base/event_fd.cc")
    set(base_line "${line}")
  endif()
endforeach()
if(consumer_line STREQUAL "" OR base_line STREQUAL "")
  message(FATAL_ERROR "compile_commands.json lacks the consumer or base/event_fd.cc")
endif()
# The folder as a regular expression (paths may hold '+' or '.').
string(REGEX REPLACE "([][+.*()^$?|\\])" "\\\\\\1" src "${SOURCE_DIR}")
if(NOT consumer_line MATCHES "(-I|-isystem )${src}/include( |$)")
  message(FATAL_ERROR "the consumer is not given microvm's public headers:\n${consumer_line}")
endif()
if(consumer_line MATCHES "(-I|-isystem )${src}( |$)")
  message(FATAL_ERROR "microvm's source root leaked onto the consumer's include path:\n${consumer_line}")
endif()
if(NOT base_line MATCHES "-I${src}( |$)")
  message(FATAL_ERROR "microvm_base does not carry the source root as its include path:\n${base_line}")
endif()
message(STATUS "add_subdirectory consumer: compiled with include/ only; microvm's libraries carry their own paths")
