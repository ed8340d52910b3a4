# cmake -DNVCC=... -DSOURCE=... -DINCLUDE_DIR=... -DOUTPUT_DIR=... -DARCHITECTURES=90,75
#       [-DHOST_COMPILER=...] [-DEXTRA_INCLUDES=dir1,dir2] [-DSTUB_CUDA_MACROS=ON] [-DWERROR=OFF]
#       -P kernels_compile.cmake
# Compiles SOURCE once per architecture, -c only (warnings as errors unless WERROR=OFF); fails
# if any compilation fails. STUB_CUDA_MACROS: when the Torch headers lack the generated
# c10/cuda/impl/cuda_cmake_macros.h (a CPU-only LibTorch), provide it (it holds one macro), so
# the ATen glue can be compiled against them.
string(REPLACE "," ";" architectures "${ARCHITECTURES}")
string(REPLACE "," ";" extra_includes "${EXTRA_INCLUDES}")
file(MAKE_DIRECTORY "${OUTPUT_DIR}")
set(include_flags -I "${INCLUDE_DIR}")
foreach(dir IN LISTS extra_includes)
  list(APPEND include_flags -I "${dir}")
endforeach()
if(STUB_CUDA_MACROS)
  set(have_macros OFF)
  foreach(dir IN LISTS extra_includes)
    if(EXISTS "${dir}/c10/cuda/impl/cuda_cmake_macros.h")
      set(have_macros ON)
    endif()
  endforeach()
  if(NOT have_macros)
    file(WRITE "${OUTPUT_DIR}/stub/c10/cuda/impl/cuda_cmake_macros.h"
         "#pragma once\n// Stub of the header a CUDA build of LibTorch generates.\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    list(APPEND include_flags -I "${OUTPUT_DIR}/stub")
  endif()
endif()
set(werror -Werror all-warnings)
if(DEFINED WERROR AND NOT WERROR)
  set(werror "")
endif()
get_filename_component(stem "${SOURCE}" NAME_WE)
set(failed "")
foreach(arch IN LISTS architectures)
  set(command "${NVCC}" -std=c++17 -arch=sm_${arch} ${werror} -Xptxas -v ${include_flags}
      -c "${SOURCE}" -o "${OUTPUT_DIR}/${stem}_sm${arch}.o")
  if(HOST_COMPILER)
    list(APPEND command -ccbin "${HOST_COMPILER}")
  endif()
  execute_process(COMMAND ${command} RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(result EQUAL 0)
    # The resource report: registers, shared memory, spills per kernel.
    string(REGEX MATCHALL "[^\n]*(Used|spill)[^\n]*" report "${output}")
    list(LENGTH report lines)
    message(STATUS "${stem} sm_${arch}: compiled (${lines} ptxas report lines)")
  else()
    message(STATUS "${stem} sm_${arch}: FAILED\n${output}")
    list(APPEND failed sm_${arch})
  endif()
endforeach()
if(failed)
  message(FATAL_ERROR "${SOURCE} does not compile for: ${failed}")
endif()
