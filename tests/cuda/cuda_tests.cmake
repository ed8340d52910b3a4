# CUDA tests (included by tests/CMakeLists.txt).
#   test_center_loss_cuda   (globbed like every test) links the fused kernels where they exist;
#                           its cases skip themselves without a GPU.
#   cuda_kernels_compile    whenever nvcc is found: compiles the raw kernel headers with
#                           -arch=sm_90 and -arch=sm_75 (-c only, warnings as errors), no GPU and
#                           no CUDA LibTorch needed.
#   gpu_check_dry_run       where torchloss::cuda is built against a pip torch: tools/gpu_check.sh
#                           --dry-run configures and builds everything the GPU check needs in a
#                           tree of its own and stops before the first launch
#   cuda_glue_compile       where nvcc is found but Torch has no CUDA (so torchloss::cuda is not
#                           built): compiles register.cu, the ATen glue included, against the Torch
#                           headers (-c only, sm_90), so the glue is compiled in CI too.
if(TARGET torchloss::cuda AND TARGET test_center_loss_cuda)
  target_link_libraries(test_center_loss_cuda PRIVATE torchloss::cuda)
endif()

if(TORCHLOSS_NVCC)
  add_test(NAME cuda_kernels_compile
    COMMAND ${CMAKE_COMMAND}
      -DNVCC=${TORCHLOSS_NVCC}
      -DHOST_COMPILER=${CMAKE_CXX_COMPILER}
      -DSOURCE=${CMAKE_CURRENT_SOURCE_DIR}/cuda/kernels_compile.cu
      -DINCLUDE_DIR=${PROJECT_SOURCE_DIR}/include
      -DOUTPUT_DIR=${CMAKE_CURRENT_BINARY_DIR}/cuda_kernels_compile
      -DARCHITECTURES=90,75
      -P ${CMAKE_CURRENT_SOURCE_DIR}/cuda/kernels_compile.cmake)
  set_tests_properties(cuda_kernels_compile PROPERTIES LABELS cuda TIMEOUT 600)
endif()

if(TORCHLOSS_NVCC AND NOT TARGET torchloss::cuda)
  string(REPLACE ";" "," _torchloss_torch_includes "${TORCH_INCLUDE_DIRS}")
  add_test(NAME cuda_glue_compile
    COMMAND ${CMAKE_COMMAND}
      -DNVCC=${TORCHLOSS_NVCC}
      -DHOST_COMPILER=${CMAKE_CXX_COMPILER}
      -DSOURCE=${PROJECT_SOURCE_DIR}/include/torchloss/cuda/register.cu
      -DINCLUDE_DIR=${PROJECT_SOURCE_DIR}/include
      -DEXTRA_INCLUDES=${_torchloss_torch_includes}
      -DSTUB_CUDA_MACROS=ON
      -DWERROR=OFF
      -DOUTPUT_DIR=${CMAKE_CURRENT_BINARY_DIR}/cuda_glue_compile
      -DARCHITECTURES=90
      -P ${CMAKE_CURRENT_SOURCE_DIR}/cuda/kernels_compile.cmake)
  set_tests_properties(cuda_glue_compile PROPERTIES LABELS cuda TIMEOUT 900)
endif()

if(TARGET torchloss::cuda AND TORCHLOSS_TORCH_PYTHON_SITE)
  add_test(NAME gpu_check_dry_run
    COMMAND ${PROJECT_SOURCE_DIR}/tools/gpu_check.sh --dry-run
      --build-dir ${CMAKE_CURRENT_BINARY_DIR}/gpu_check_dry_run
      --out ${CMAKE_CURRENT_BINARY_DIR}/gpu_check_dry_run/out)
  set_tests_properties(gpu_check_dry_run PROPERTIES LABELS cuda TIMEOUT 1800
    ENVIRONMENT "PYTHON=${TORCHLOSS_REFERENCE_PYTHON};PYTHONPATH=${TORCHLOSS_TORCH_PYTHON_SITE};CUDACXX=${CMAKE_CUDA_COMPILER}"
    PASS_REGULAR_EXPRESSION "no GPU here: dry run stops before the first launch"
    FAIL_REGULAR_EXPRESSION "FAIL     ")
endif()
