# Refuses a LibTorch assembled from two installations. TorchConfig.cmake locates libtorch.so
# with find_library, which searches the system folders before its own: with Debian's
# libtorch-dev installed, pointing CMAKE_PREFIX_PATH at a pip torch's share/cmake alone gives
# the wheel's headers and Debian's libtorch.so, a program that crashes at run time.
if(TORCH_LIBRARY AND TORCH_INSTALL_PREFIX)
  get_filename_component(_torchloss_torch_lib "${TORCH_LIBRARY}" REALPATH)
  get_filename_component(_torchloss_torch_prefix "${TORCH_INSTALL_PREFIX}" REALPATH)
  string(FIND "${_torchloss_torch_lib}" "${_torchloss_torch_prefix}/" _torchloss_at)
  if(NOT _torchloss_at EQUAL 0)
    message(FATAL_ERROR
      "torchloss: Torch's CMake package belongs to ${TORCH_INSTALL_PREFIX} but its libtorch is "
      "${TORCH_LIBRARY}, from another installation. Put the package's own folder first: "
      "-DCMAKE_PREFIX_PATH=\"${TORCH_INSTALL_PREFIX};${TORCH_INSTALL_PREFIX}/share/cmake\" "
      "(or -DTORCH_LIBRARY=${TORCH_INSTALL_PREFIX}/lib/libtorch.so).")
  endif()
endif()
