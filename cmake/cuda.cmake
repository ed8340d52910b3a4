# The optional CUDA pieces of torchloss (included by the top-level CMakeLists.txt).
#
#   torchloss::cuda   INTERFACE target whose source, include/torchloss/cuda/register.cu, compiles
#                     the fused kernels into the consumer and fills the kernel registry at static
#                     initialisation (include/torchloss/detail/cuda_registry.hpp). Defined only
#                     where Torch has CUDA and a CUDA compiler is found; a consumer links it and
#                     enables the CUDA language. Without it, CUDA tensors run the ATen path.
#   TORCHLOSS_NVCC    the CUDA compiler, whenever one is found (Torch with CUDA or not): the test
#                     cuda_kernels_compile (tests/cuda/cuda_tests.cmake) compiles the raw kernels
#                     with it, so a broken kernel fails CI on machines without a GPU.
option(TORCHLOSS_CUDA "Define torchloss::cuda where Torch has CUDA and nvcc is found" ON)

# Torch's package defines torch_cuda (2.x) or TORCH_CUDA_LIBRARIES (both) when it has CUDA.
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(TORCHLOSS_TORCH_HAS_CUDA ON)
else()
  set(TORCHLOSS_TORCH_HAS_CUDA OFF)
endif()

# Look for nvcc only where it serves: the target, or the compile test of a top-level build
# (a CPU-only consumer that adds torchloss as a subdirectory pays nothing).
if((TORCHLOSS_CUDA AND TORCHLOSS_TORCH_HAS_CUDA) OR TORCHLOSS_BUILD_TESTS)
  include(CheckLanguage)
  check_language(CUDA)
endif()
set(TORCHLOSS_NVCC "${CMAKE_CUDA_COMPILER}" CACHE INTERNAL "nvcc used by the kernel compile test")

if(TORCHLOSS_CUDA AND TORCHLOSS_TORCH_HAS_CUDA AND CMAKE_CUDA_COMPILER)
  enable_language(CUDA)
  if(NOT DEFINED CMAKE_CUDA_STANDARD)
    set(CMAKE_CUDA_STANDARD 17)
  endif()
  add_library(torchloss_cuda INTERFACE)
  add_library(torchloss::cuda ALIAS torchloss_cuda)
  set_target_properties(torchloss_cuda PROPERTIES EXPORT_NAME cuda)
  target_sources(torchloss_cuda INTERFACE
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include/torchloss/cuda/register.cu>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/torchloss/cuda/register.cu>)
  target_link_libraries(torchloss_cuda INTERFACE torchloss)
  target_compile_features(torchloss_cuda INTERFACE cuda_std_17)
  install(TARGETS torchloss_cuda EXPORT torchlossTargets)
  message(STATUS "torchloss: torchloss::cuda (fused CUDA kernels) with ${CMAKE_CUDA_COMPILER}")
elseif(TORCHLOSS_TORCH_HAS_CUDA)
  message(STATUS "torchloss: Torch has CUDA but no CUDA compiler was found (set CMAKE_CUDA_COMPILER): "
                 "no torchloss::cuda, CUDA tensors use the ATen path")
endif()
