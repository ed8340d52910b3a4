# Configures, builds and runs one consumer project in a fresh binary directory; fails on the
# first step that fails, including a non-zero exit of the consumer program.
#   cmake -DCONSUMER_SOURCE_DIR=... -DCONSUMER_BINARY_DIR=... -DGENERATOR=Ninja
#         -DMAKE_PROGRAM=... -DCXX_COMPILER=... [-DCXX_COMPILER_LAUNCHER=...]
#         -DCONFIG=Release -DPREFIX_PATH=a;b -DTORCH_DIR=...
#         [-DTORCHLOSS_SOURCE_DIR=...] [-DTORCHLOSS_EXPECTED_VERSION=...]
#         [-DCUDA_COMPILER=... -DTORCH_CUDA_ARCH_LIST=...] -P run_consumer.cmake
foreach(var CONSUMER_SOURCE_DIR CONSUMER_BINARY_DIR GENERATOR MAKE_PROGRAM CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()

function(check_step what result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "consumer ${CONSUMER_SOURCE_DIR}: ${what} failed (${result})")
  endif()
endfunction()

file(REMOVE_RECURSE "${CONSUMER_BINARY_DIR}")
file(MAKE_DIRECTORY "${CONSUMER_BINARY_DIR}")

# Only the add_subdirectory and FetchContent consumers read it (no "not used" warning).
set(checkout_arg "")
if(TORCHLOSS_SOURCE_DIR)
  set(checkout_arg "-DTORCHLOSS_SOURCE_DIR=${TORCHLOSS_SOURCE_DIR}")
endif()
# Only the CUDA consumer gets a CUDA compiler and PyTorch's architecture list.
set(cuda_args "")
if(CUDA_COMPILER)
  set(cuda_args "-DCMAKE_CUDA_COMPILER=${CUDA_COMPILER}" "-DTORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST}"
                "-DCMAKE_CUDA_ARCHITECTURES=OFF")
endif()

# Each -D is one quoted argument written out here (not passed through a function's ARGN,
# which would split it), so a ';' inside PREFIX_PATH stays within it.
execute_process(COMMAND
  "${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}" -B "${CONSUMER_BINARY_DIR}" -G "${GENERATOR}"
  "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}"
  "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
  "-DCMAKE_CXX_COMPILER_LAUNCHER=${CXX_COMPILER_LAUNCHER}"
  "-DCMAKE_BUILD_TYPE=${CONFIG}"
  "-DCMAKE_PREFIX_PATH=${PREFIX_PATH}"
  "-DTorch_DIR=${TORCH_DIR}"
  ${checkout_arg}
  ${cuda_args}
  "-DTORCHLOSS_EXPECTED_VERSION=${TORCHLOSS_EXPECTED_VERSION}"
  RESULT_VARIABLE result)
check_step(configure "${result}")
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${CONSUMER_BINARY_DIR}" --config "${CONFIG}"
  RESULT_VARIABLE result)
check_step(build "${result}")

# Single-config generators put the program at the top, multi-config ones under <config>/.
set(program "${CONSUMER_BINARY_DIR}/torchloss_consumer")
if(NOT EXISTS "${program}")
  set(program "${CONSUMER_BINARY_DIR}/${CONFIG}/torchloss_consumer")
endif()
execute_process(COMMAND "${program}" RESULT_VARIABLE result)
check_step(run "${result}")
