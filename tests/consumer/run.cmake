# The package test (ctest label `package`): installs the palu build tree into a fresh prefix,
# configures tests/consumer against it with find_package(palu), builds it, runs the program and
# checks its output. Fails on an uninstalled header, a target missing from the export set, a
# dependency the config file does not find, or a library missing from the link interface.
# cmake -DPALU_SOURCE_DIR=... -DPALU_BUILD_DIR=... -DLIBDIR=lib -DWORK_DIR=... -DGENERATOR=...
#       -DCXX_COMPILER=... -DBUILD_TYPE=... [-DLAUNCHER=ccache] -P run.cmake
foreach(v PALU_SOURCE_DIR PALU_BUILD_DIR LIBDIR WORK_DIR GENERATOR CXX_COMPILER BUILD_TYPE)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "consumer: -D${v}=... is required")
  endif()
endforeach()

if(BUILD_TYPE STREQUAL "")
  set(BUILD_TYPE Release)
endif()

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer: ${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(last_out "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
# Only the libraries, headers and CMake files: the apps need not be built for this test.
run("install"
    ${CMAKE_COMMAND} --install ${PALU_BUILD_DIR} --prefix ${prefix} --component Development)

set(configure_args -S ${CMAKE_CURRENT_LIST_DIR} -B ${WORK_DIR}/build -G ${GENERATOR}
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(LAUNCHER)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
# The installed package must stand alone: no path into the source or build tree.
file(GLOB cmake_files ${prefix}/${LIBDIR}/cmake/palu/*.cmake)
if(NOT cmake_files)
  message(FATAL_ERROR "consumer: nothing installed in ${prefix}/${LIBDIR}/cmake/palu")
endif()
foreach(f IN LISTS cmake_files)
  file(READ ${f} text)
  foreach(tree ${PALU_SOURCE_DIR} ${PALU_BUILD_DIR})
    string(FIND "${text}" "${tree}/" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "consumer: ${f} refers to ${tree}")
    endif()
  endforeach()
endforeach()

run("configure" ${CMAKE_COMMAND} ${configure_args})
run("build" ${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run("run" ${WORK_DIR}/build/palu_consumer)

# (Two variables, not a list: the brackets of the first would keep a list from splitting.)
set(expect_plan
    "\"format\":\"palu.rank_plan\".*\"layers\":\\[{\"k\":\\[16,16\\],\"v\":\\[16,16\\]}")
set(expect_group "default group size for 8 kv heads: 4")
foreach(re IN ITEMS expect_plan expect_group)
  if(NOT last_out MATCHES "${${re}}")
    message(FATAL_ERROR "consumer: output does not match '${${re}}':\n${last_out}")
  endif()
endforeach()
message(STATUS "consumer: built against ${prefix} and ran:\n${last_out}")
