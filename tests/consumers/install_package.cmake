# Fixture of the find_package consumer test: installs the main build into a fresh prefix,
# exactly as a user would (cmake --install), so stale files of an earlier run cannot hide a
# header or config file that is no longer installed.
#   cmake -DBUILD_DIR=<main build> -DPREFIX=<prefix> [-DCONFIG=<config>] -P install_package.cmake
foreach(var BUILD_DIR PREFIX)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "install_package.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE "${PREFIX}")
execute_process(
  COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}" --config "${CONFIG}"
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD_DIR} --prefix ${PREFIX} failed: ${result}")
endif()
