# palu_add_module(<target> DEPS <targets...> PRIVATE_DEPS <targets...>)
# One CMake target per module: every src/*.cpp of the calling directory is compiled into
# palu_<name>; public headers live in include/palu/<module>/. A module with no sources yet is an
# INTERFACE target so later issues can fill it without touching the layout.
#
# Every module is also a package component: palu::<name> (ALIAS in the tree, EXPORT_NAME when
# installed), its headers installed under ${CMAKE_INSTALL_INCLUDEDIR}, the target in the export set
# palu-targets (see palu_install_package in the top-level CMakeLists.txt). The libraries are
# static, so PRIVATE_DEPS still reach consumers as $<LINK_ONLY:...>: cmake/palu-config.cmake.in
# must recreate every imported target either list names.
include(GNUInstallDirs)

function(palu_add_module target)
  cmake_parse_arguments(ARG "" "" "DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*.cpp)
  string(REPLACE "palu_" "" short ${target})
  set(inc $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
          $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  if(srcs)
    add_library(${target} STATIC ${srcs})
    target_include_directories(${target} PUBLIC ${inc} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
    # palu_options (warnings, sanitizers) stays in the build tree; C++20 is a usage requirement of
    # the installed library as well.
    target_compile_features(${target} PUBLIC cxx_std_20)
    target_link_libraries(${target} PUBLIC $<BUILD_INTERFACE:palu_options> ${ARG_DEPS}
                          PRIVATE ${ARG_PRIVATE_DEPS})
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${inc})
    target_compile_features(${target} INTERFACE cxx_std_20)
    target_link_libraries(${target} INTERFACE $<BUILD_INTERFACE:palu_options> ${ARG_DEPS})
  endif()
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${short})
  add_library(palu::${short} ALIAS ${target})
  palu_install_target(${target} ${CMAKE_CURRENT_SOURCE_DIR}/include)
endfunction()

# palu_install_target(<target> <include dir>): the library into the export set palu-targets and
# the headers below <include dir> (include/palu/<module>/*.h) into ${CMAKE_INSTALL_INCLUDEDIR}.
# Component Development, so that `cmake --install --component Development` needs only the
# libraries built (the apps are component Runtime).
function(palu_install_target target include_dir)
  if(NOT PALU_INSTALL)
    return()
  endif()
  install(TARGETS ${target} EXPORT palu-targets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development)
  if(EXISTS ${include_dir})
    install(DIRECTORY ${include_dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
            COMPONENT Development FILES_MATCHING PATTERN "*.h")
  endif()
endfunction()
