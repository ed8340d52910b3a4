# Runs the Fashion-MNIST example and checks what it leaves behind.
#   cmake -DCHECK=training|missing_data -DEXAMPLE=<exe> -DDATA_DIR=<dir> -DOUTPUT_DIR=<dir> -P smoke_test.cmake
# training:     1 epoch on 512/256 images must exit 0 and write metrics.csv (header and one
#               numeric row, accuracies in [0, 1]) and metrics.png.
# missing_data: a missing data directory must exit non-zero with a one-line error naming the file.
foreach(variable CHECK EXAMPLE DATA_DIR OUTPUT_DIR)
  if(NOT DEFINED ${variable})
    message(FATAL_ERROR "smoke_test.cmake: -D${variable}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE "${OUTPUT_DIR}")

if(CHECK STREQUAL "missing_data")
  execute_process(COMMAND "${EXAMPLE}" --data-dir "${DATA_DIR}" --output-dir "${OUTPUT_DIR}" --no-progress
                  RESULT_VARIABLE exit_code OUTPUT_VARIABLE output ERROR_VARIABLE error_output)
  if(exit_code EQUAL 0)
    message(FATAL_ERROR "the example succeeded without data")
  endif()
  string(STRIP "${error_output}" error_output)
  if(NOT error_output MATCHES "^fashion_mnist: error: IDX file not found: '[^\n]*train-images-idx3-ubyte\\.gz'$")
    message(FATAL_ERROR "expected a one-line 'IDX file not found' error, got:\n${error_output}")
  endif()
  return()
elseif(NOT CHECK STREQUAL "training")
  message(FATAL_ERROR "smoke_test.cmake: unknown CHECK '${CHECK}'")
endif()

execute_process(COMMAND "${EXAMPLE}" --data-dir "${DATA_DIR}" --epochs 1 --limit 512 --test-limit 256
                        --no-progress --threads 2 --plot --output-dir "${OUTPUT_DIR}"
                RESULT_VARIABLE exit_code)
if(NOT exit_code EQUAL 0)
  message(FATAL_ERROR "the example failed with exit code ${exit_code}")
endif()

set(metrics_csv "${OUTPUT_DIR}/metrics.csv")
if(NOT EXISTS "${metrics_csv}")
  message(FATAL_ERROR "${metrics_csv} was not written")
endif()
file(STRINGS "${metrics_csv}" lines)
list(LENGTH lines line_count)
if(NOT line_count EQUAL 2)
  message(FATAL_ERROR "${metrics_csv}: expected a header and 1 row, got ${line_count} lines")
endif()
list(GET lines 0 header)
if(NOT header STREQUAL "epoch,train_loss,test_loss,test_accuracy,balanced_accuracy,seconds")
  message(FATAL_ERROR "${metrics_csv}: unexpected header '${header}'")
endif()
list(GET lines 1 row)
string(REPLACE "," ";" fields "${row}")
list(LENGTH fields field_count)
if(NOT field_count EQUAL 6)
  message(FATAL_ERROR "${metrics_csv}: expected 6 fields, got row '${row}'")
endif()
# epoch, train_loss, test_loss, test_accuracy, balanced_accuracy, seconds
set(patterns "^1$" "^[0-9.e+-]+$" "^[0-9.e+-]+$" "^(0(\\.[0-9]+)?|1)$" "^(0(\\.[0-9]+)?|1)$" "^[0-9.e+-]+$")
foreach(index RANGE 5)
  list(GET fields ${index} field)
  list(GET patterns ${index} pattern)
  if(NOT field MATCHES "${pattern}")
    message(FATAL_ERROR "${metrics_csv}: field ${index} '${field}' of row '${row}' is malformed")
  endif()
endforeach()

foreach(file checkpoint/model.pt checkpoint/optimizer.pt metrics.png)
  if(NOT EXISTS "${OUTPUT_DIR}/${file}")
    message(FATAL_ERROR "${OUTPUT_DIR}/${file} was not written")
  endif()
endforeach()
message(STATUS "metrics.csv: ${row}")
