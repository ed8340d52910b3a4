# Installs the headers, the exported INTERFACE target and the package config.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS torchloss EXPORT torchlossTargets)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/torchloss
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(TORCHLOSS_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/torchloss)
install(EXPORT torchlossTargets NAMESPACE torchloss::
        DESTINATION ${TORCHLOSS_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/torchlossConfig.cmake.in
  ${PROJECT_BINARY_DIR}/torchlossConfig.cmake
  INSTALL_DESTINATION ${TORCHLOSS_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/torchlossConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/torchlossConfig.cmake
              ${PROJECT_BINARY_DIR}/torchlossConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/check_torch.cmake
        DESTINATION ${TORCHLOSS_CMAKE_DIR})
