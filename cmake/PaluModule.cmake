# palu_add_module(<target> DEPS <targets...>)
# One CMake target per module: every src/*.cpp of the calling directory is compiled into
# palu_<name>; public headers live in include/palu/<module>/. A module with no sources yet is an
# INTERFACE target so later issues can fill it without touching the layout.
function(palu_add_module target)
  cmake_parse_arguments(ARG "" "" "DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*.cpp)
  string(REPLACE "palu_" "" short ${target})
  if(srcs)
    add_library(${target} STATIC ${srcs})
    target_include_directories(${target} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
                                         PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
    target_link_libraries(${target} PUBLIC palu_options ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${CMAKE_CURRENT_SOURCE_DIR}/include)
    target_link_libraries(${target} INTERFACE palu_options ${ARG_DEPS})
  endif()
  add_library(palu::${short} ALIAS ${target})
endfunction()
